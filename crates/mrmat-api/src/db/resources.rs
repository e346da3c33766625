//! Resources: the owner-scoped table of `resource/v1`, its functions written by
//! [`owned_store!`](super::owned::owned_store) (see `db/owned.rs` for the rules every such
//! table keeps: one transaction per write, the unique index deciding races, owners keyed
//! by issuer and subject).

super::owned::owned_store!(resources, "resource");

#[cfg(test)]
mod tests;
