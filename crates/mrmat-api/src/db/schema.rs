//! Diesel table definitions, the same for both backends (see `migrations/`).

diesel::table! {
    /// One row per (issuer, subject). `issuer` is NULL on rows written before owners had
    /// one, or by an instance of that release during a rolling upgrade: those are unique
    /// by subject alone (migration `owners_keyed_by_issuer`).
    owners (id) {
        id -> BigInt,
        subject -> Text,
        client_id -> Text,
        name -> Text,
        created_at -> Timestamp,
        issuer -> Nullable<Text>,
    }
}

diesel::table! {
    /// Resources; `(owner_id, name)` is unique.
    resources (id) {
        id -> BigInt,
        owner_id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(resources -> owners (owner_id));
diesel::allow_tables_to_appear_in_same_query!(owners, resources);
