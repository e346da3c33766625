-- GET /api/resource/v1/{id} as the server sends it: one prepared statement. `id` is given
-- with -D (the first seeded resource). Taken from PostgreSQL's statement log.
\set one 1
SELECT "resources"."id", "resources"."owner_id", "resources"."name", "resources"."created_at", "resources"."updated_at", "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name" FROM ("resources" INNER JOIN "owners" ON ("resources"."owner_id" = "owners"."id")) WHERE ("resources"."id" = :id) LIMIT :one;
