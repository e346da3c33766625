-- v1 schema. Owners are keyed by the token subject; client_id is kept for display.
-- AUTOINCREMENT so a deleted id is never handed out again (a stale URL stays 404).
CREATE TABLE owners (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    TEXT      NOT NULL UNIQUE,
    client_id  TEXT      NOT NULL,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE resources (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER   NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT resources_owner_name_unique UNIQUE (owner_id, name)
);
