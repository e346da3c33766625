-- Expand step of keying owners by (issuer, subject): `alice` of one identity provider is
-- not `alice` of another. Instances of the previous release keep running against this
-- schema during a rolling upgrade: they insert owners without an issuer and look them up
-- by subject, so `issuer` is nullable and a row without one (theirs, or one written
-- before this migration) stays unique by subject alone, as before: two of their
-- concurrent first writes of one subject still collide. The new code looks owners up by
-- (issuer, subject) and adopts a row without an issuer for the provider those instances
-- served. The contract step (NOT NULL, one plain unique index) is a later migration; see
-- docs/DESIGN.md.
--
-- SQLite cannot drop the `subject ... UNIQUE` column constraint of the first migration
-- (its index belongs to the table), so `owners` is rebuilt. `resources` is rebuilt with
-- it: with foreign keys on (every connection turns them on, and the pragma cannot change
-- inside the migration's transaction) dropping the old `owners` would cascade into
-- `resources` while it still refers to it. So both are copied, the old ones dropped,
-- children first, and the copies renamed; renaming `owners_new` rewrites the reference
-- in `resources_new`. Ids are copied as they are, and so are the AUTOINCREMENT counters,
-- so an id deleted before the migration is still never handed out again. All of it runs
-- in the migration's one transaction: it lands whole or not at all.

CREATE TABLE owners_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT      NOT NULL,
    client_id  TEXT      NOT NULL,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Last, where PostgreSQL's ADD COLUMN puts it: both schemas read the same.
    issuer     TEXT
);
INSERT INTO owners_new (id, subject, client_id, name, created_at)
     SELECT id, subject, client_id, name, created_at FROM owners;

CREATE TABLE resources_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER   NOT NULL REFERENCES owners_new (id) ON DELETE CASCADE,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT resources_owner_name_unique UNIQUE (owner_id, name)
);
INSERT INTO resources_new (id, owner_id, name, created_at, updated_at)
     SELECT id, owner_id, name, created_at, updated_at FROM resources;

DELETE FROM sqlite_sequence WHERE name IN ('owners_new', 'resources_new');
INSERT INTO sqlite_sequence (name, seq)
     SELECT name || '_new', seq FROM sqlite_sequence WHERE name IN ('owners', 'resources');

DROP TABLE resources;
DROP TABLE owners;
ALTER TABLE owners_new RENAME TO owners;
ALTER TABLE resources_new RENAME TO resources;

CREATE UNIQUE INDEX owners_legacy_subject_unique ON owners (subject) WHERE issuer IS NULL;
CREATE UNIQUE INDEX owners_issuer_subject_unique ON owners (issuer, subject) WHERE issuer IS NOT NULL;
