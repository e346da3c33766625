-- Expand step of keying owners by (issuer, subject): `alice` of one identity provider is
-- not `alice` of another. Instances of the previous release keep running against this
-- schema during a rolling upgrade: they insert owners without an issuer and look them up
-- by subject, so `issuer` is nullable and a row without one (theirs, or one written
-- before this migration) stays unique by subject alone, as before: two of their
-- concurrent first writes of one subject still collide. The new code looks owners up by
-- (issuer, subject) and adopts a row without an issuer for the provider those instances
-- served. The contract step (NOT NULL, one plain unique index) is a later migration; see
-- docs/DESIGN.md.
ALTER TABLE owners ADD COLUMN issuer TEXT;

-- The new indexes exist before the old constraint goes, in this one transaction, so
-- subjects are never without a unique index.
CREATE UNIQUE INDEX owners_legacy_subject_unique ON owners (subject) WHERE issuer IS NULL;
CREATE UNIQUE INDEX owners_issuer_subject_unique ON owners (issuer, subject) WHERE issuer IS NOT NULL;

-- The column constraint `subject ... UNIQUE` of the first migration, by its default name.
ALTER TABLE owners DROP CONSTRAINT owners_subject_key;
