//! Wire types of the mrmat-api HTTP interface, shared by the server and its client.
//!
//! Nothing here knows about actix or Diesel: these are the JSON shapes on the wire, with
//! the validation rules that belong to them. Old API versions keep their own types; a
//! changed shape is a new version, never an edit of an existing one.

pub mod greeting;
pub mod health;
pub mod index;
pub mod metadata;
pub mod owner;
pub mod paths;
pub mod problem;
pub mod redact;
pub mod resource;
pub mod scope;
pub mod secret;
pub mod text;
pub mod timestamp;
pub mod urls;

pub use problem::Problem;
