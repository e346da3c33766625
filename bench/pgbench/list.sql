-- GET /api/resource/v1/?limit=10 as the server sends it: one prepared statement, the
-- page size plus one (to know whether a next page exists). Taken from PostgreSQL's
-- statement log (log_statement = all) of a list request; see bench/README.md.
\set after 0
\set page 11
\set skip 0
SELECT "resources"."id", "resources"."owner_id", "resources"."name", "resources"."created_at", "resources"."updated_at", "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name" FROM ("resources" INNER JOIN "owners" ON ("resources"."owner_id" = "owners"."id")) WHERE ("resources"."id" > :after) ORDER BY "resources"."id" ASC LIMIT :page OFFSET :skip;
