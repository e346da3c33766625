-- Back to owners keyed by subject alone. Fails (and changes nothing) when two providers
-- have an owner of the same subject: merging two people's resources is not a rollback.
ALTER TABLE owners ADD CONSTRAINT owners_subject_key UNIQUE (subject);
DROP INDEX owners_issuer_subject_unique;
DROP INDEX owners_legacy_subject_unique;
ALTER TABLE owners DROP COLUMN issuer;
