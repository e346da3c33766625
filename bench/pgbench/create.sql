-- POST /api/resource/v1/ by an owner who exists, as the server sends it: a transaction
-- that finds the owner and inserts the resource. `subject`, `issuer`, `owner` and `at`
-- are given with -D; the name is a random number, as unique as the server's names.
-- Taken from PostgreSQL's statement log.
\set name random(1, 1000000000000000)
BEGIN;
SELECT "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name", "owners"."issuer" FROM "owners" WHERE (("owners"."subject" = :subject) AND (("owners"."issuer" = :issuer) OR ("owners"."issuer" IS NULL)));
INSERT INTO "resources" ("owner_id", "name", "created_at", "updated_at") VALUES (:owner, :name, :at, :at) RETURNING "resources"."id";
COMMIT;
