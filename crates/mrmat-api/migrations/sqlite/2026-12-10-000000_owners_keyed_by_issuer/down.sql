-- Back to owners keyed by subject alone, by the same rebuild as up.sql (see there why
-- both tables). Fails (and changes nothing) when two providers have an owner of the
-- same subject: merging two people's resources is not a rollback.

CREATE TABLE owners_old (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT      NOT NULL UNIQUE,
    client_id  TEXT      NOT NULL,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO owners_old (id, subject, client_id, name, created_at)
     SELECT id, subject, client_id, name, created_at FROM owners;

CREATE TABLE resources_old (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER   NOT NULL REFERENCES owners_old (id) ON DELETE CASCADE,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT resources_owner_name_unique UNIQUE (owner_id, name)
);
INSERT INTO resources_old (id, owner_id, name, created_at, updated_at)
     SELECT id, owner_id, name, created_at, updated_at FROM resources;

DELETE FROM sqlite_sequence WHERE name IN ('owners_old', 'resources_old');
INSERT INTO sqlite_sequence (name, seq)
     SELECT name || '_old', seq FROM sqlite_sequence WHERE name IN ('owners', 'resources');

DROP TABLE resources;
DROP TABLE owners;
ALTER TABLE owners_old RENAME TO owners;
ALTER TABLE resources_old RENAME TO resources;
