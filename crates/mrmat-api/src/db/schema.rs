//! Diesel table definitions, the same for both backends (see `migrations/`).

diesel::table! {
    /// One row per token subject.
    owners (id) {
        id -> BigInt,
        subject -> Text,
        client_id -> Text,
        name -> Text,
        created_at -> Timestamp,
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
