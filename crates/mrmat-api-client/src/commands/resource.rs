//! `greeting` and `resource`: the APIs. `resource list` follows the server's `next` links
//! to the end unless `--limit` asks for one page, and says so on stderr when it stops
//! short.

use mrmat_api_client::ClientError;
use mrmat_api_client::api::{GreetingVersion, ListQuery};
use mrmat_api_types::resource::Resource;
use serde::Serialize;

use super::{Context, TIME_FORMAT};
use crate::cli::{ApiVersion, ListArgs, ResourceCommand};
use crate::output::{self, Table};

impl Context {
    pub(super) async fn greeting(
        &self,
        api: ApiVersion,
        name: Option<String>,
    ) -> Result<(), ClientError> {
        if name.is_some() && api != ApiVersion::V2 {
            return Err(ClientError::Config(
                "--name only applies to --api v2".into(),
            ));
        }
        let greeting = match api {
            ApiVersion::V1 => self.api().greeting(GreetingVersion::V1, None).await?,
            ApiVersion::V2 => {
                self.api()
                    .greeting(GreetingVersion::V2, name.as_deref())
                    .await?
            }
            ApiVersion::V3 => {
                self.authorized()
                    .call(|api| async move { api.greeting(GreetingVersion::V3, None).await })
                    .await?
            }
        };
        output::print(self.output, &greeting, |g| Table::line(&g.message))
    }

    pub(super) async fn resource(&self, command: ResourceCommand) -> Result<(), ClientError> {
        let api = self.authorized();
        match command {
            ResourceCommand::List(args) => self.list(args).await,
            ResourceCommand::Get { id } => {
                let resource = api
                    .call(|api| async move { api.get_resource(id).await })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Create { name } => {
                let resource = api
                    .call(|api| {
                        let name = name.clone();
                        async move { api.create_resource(&name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Update { id, name } => {
                let resource = api
                    .call(|api| {
                        let name = name.clone();
                        async move { api.update_resource(id, &name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Delete { id } => {
                api.call(|api| async move { api.delete_resource(id).await })
                    .await?;
                self.note(format!("Deleted resource {id}."));
                Ok(())
            }
        }
    }

    async fn list(&self, args: ListArgs) -> Result<(), ClientError> {
        let api = self.authorized();
        let query = ListQuery {
            limit: args.limit.or(args.page_size),
            offset: args.offset,
            after: args.after,
        };
        let first = api
            .call(|api| async move { api.list_resources(&query).await })
            .await?;
        let mut resources = first.resources;
        let mut next = first.next;
        if args.limit.is_none() {
            while let Some(link) = next.take() {
                self.trace(format!("following the next page, {link}"));
                let page = api
                    .call(|api| {
                        let link = link.clone();
                        async move { api.list_resources_next(&link).await }
                    })
                    .await?;
                // The list is ordered by id: a page that does not move forward would loop.
                let last = resources.last().map(|r| r.id);
                let moved = match (page.resources.first(), last) {
                    (Some(first), Some(last)) => first.id > last,
                    (Some(_), None) => true,
                    (None, _) => page.next.is_none(),
                };
                if !moved {
                    return Err(ClientError::Protocol {
                        what: "the server",
                        reason: format!("its next page ({link}) does not move past the last"),
                    });
                }
                resources.extend(page.resources);
                next = page.next;
            }
        }
        let next_after = next
            .map(|link| next_cursor(&link, &resources))
            .transpose()?;
        let list = Listed {
            resources,
            next_after,
        };
        output::print(self.output, &list, resource_table)?;
        if let (Some(after), Some(limit)) = (list.next_after, args.limit) {
            let count = list.resources.len();
            let noun = if count == 1 { "resource" } else { "resources" };
            self.note(format!(
                "Showing {count} {noun}; the next page: {}, or all of them: {}",
                self.command(&format!(" resource list --limit {limit} --after {after}")),
                self.command(" resource list --all")
            ));
        }
        Ok(())
    }
}

/// What `resource list` prints: the resources, and where the next page starts (the
/// value for `--after`) when it stopped short. The server's `next` is a path for
/// itself; a person or a script passes back the cursor instead.
#[derive(Debug, Serialize)]
struct Listed {
    resources: Vec<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

/// The `after` cursor of the server's `next` link.
fn next_cursor(link: &str, resources: &[Resource]) -> Result<i64, ClientError> {
    let url = url::Url::parse("http://server/")
        .and_then(|base| base.join(link))
        .ok();
    let after = url.as_ref().and_then(|url| {
        url.query_pairs()
            .find(|(k, _)| k == "after")
            .and_then(|(_, v)| v.parse().ok())
    });
    // The keyset cursor is the last id shown; a link without one still pages from there.
    after
        .or_else(|| resources.last().map(|r| r.id))
        .ok_or_else(|| ClientError::Protocol {
            what: "the server",
            reason: format!("its next page ({link}) names no place to start"),
        })
}

fn resource_table(list: &Listed) -> Table {
    if list.resources.is_empty() {
        return Table::line("No resources.");
    }
    // Ids and times are short and must stay whole; names and owners give way.
    let mut table = Table::with_header(&["ID", "NAME", "OWNER", "UPDATED"]).keep_width(&[0, 3]);
    for r in &list.resources {
        table.row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.owner.name.clone(),
            r.updated_at.format(TIME_FORMAT).to_string(),
        ]);
    }
    table
}

fn resource_fields(r: &Resource) -> Table {
    Table::fields(&[
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("owner", format!("{} ({})", r.owner.name, r.owner.client_id)),
        ("created", r.created_at.format(TIME_FORMAT).to_string()),
        ("updated", r.updated_at.format(TIME_FORMAT).to_string()),
    ])
}
