//! One place for each fact about a route: its path, its methods (GET answers HEAD too),
//! what each method demands of the caller (read from the type of its handler's first
//! argument, so it cannot drift from the handler), and the 405 with `Allow` for every
//! other method. Routing and the OpenAPI document are both built from [`Endpoint`]s.
//!
//! Why by hand and not `utoipa-actix-web` (issue 21 asked): that crate collects OpenAPI
//! paths only from actix's `#[get("/")]`-style services (its docs: manual `route(...)`
//! wiring is not collected), and such a service is one resource of one pattern. Adopting
//! it would give up what this module is for: both slash forms as two plain resources (one
//! resource of two patterns is matched by a regex on every request), HEAD with GET, 405
//! with `Allow` per path, and the demand read from the handler's type, which feeds the
//! document's security and problem answers. What it would save is the `paths(...)` list
//! of each version's `Doc`; the path itself would still be written twice (in the actix
//! macro and `#[utoipa::path]`), as it is here (in [`Endpoint::at`] and
//! `#[utoipa::path]`), where `docs.rs`'s `the_document_and_the_routes_agree` test fails
//! when the two differ. Not measured: the trade is in behaviour, not in speed.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route, guard, web};

use crate::auth::{Access, Requirement};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::metrics::RouteName;

/// What a handler demands of its caller: the [`Access`] of its first argument; nothing
/// when it takes none.
pub(crate) trait Guarded<Args> {
    /// The demand.
    const REQUIREMENT: Requirement;
}

impl<F: Handler<()>> Guarded<()> for F {
    const REQUIREMENT: Requirement = Requirement::Open;
}

macro_rules! guarded {
    ($first:ident $(, $rest:ident)*) => {
        impl<F, $first: Access, $($rest,)*> Guarded<($first, $($rest,)*)> for F
        where
            F: Handler<($first, $($rest,)*)>,
        {
            const REQUIREMENT: Requirement = $first::REQUIREMENT;
        }
    };
}

guarded!(A);
guarded!(A, B);
guarded!(A, B, C);
guarded!(A, B, C, D);
guarded!(A, B, C, D, E);

// Extractors that demand nothing. A handler whose first argument is none of these and no
// auth extractor does not compile until its type says what it demands.
impl Access for HttpRequest {
    const REQUIREMENT: Requirement = Requirement::Open;
}
impl<T: ?Sized> Access for web::Data<T> {
    const REQUIREMENT: Requirement = Requirement::Open;
}
impl<T> Access for web::Path<T> {
    const REQUIREMENT: Requirement = Requirement::Open;
}
impl Access for JsonBody {
    const REQUIREMENT: Requirement = Requirement::Open;
}

/// `name` as a `&'static str`: route templates are few and live as long as the process,
/// and a static label costs the metrics no allocation per request. Each is kept once,
/// however often the routes are registered (once per worker, and per test server).
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A form of an endpoint's path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Form {
    /// With a trailing slash: how clients write an API's paths (DESIGN.md).
    Slash,
    /// Without.
    Bare,
}

impl Form {
    /// Both, in the order the router should try them.
    pub(crate) const BOTH: [Form; 2] = [Form::Slash, Form::Bare];
}

/// One path and the methods it answers.
pub(crate) struct Endpoint {
    path: &'static str,
    /// What makes each method's route: called once for each form of the path.
    routes: Vec<Box<dyn Fn() -> Route>>,
    operations: Vec<(Method, Requirement)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("path", &self.path)
            .field("operations", &self.operations)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint at `path`, as the OpenAPI document writes it (relative to the API's
    /// mount, e.g. `/` and `/{id}`; or absolute for the open endpoints). It answers with
    /// and without a trailing slash: both forms are routed, so no request is rewritten
    /// (and no redirect is sent) to reach it.
    pub(crate) fn at(path: &'static str) -> Self {
        Self {
            path,
            routes: Vec::new(),
            operations: Vec::new(),
        }
    }

    /// Adds the route `make` builds to both forms of the path.
    fn route(mut self, make: impl Fn() -> Route + 'static) -> Self {
        self.routes.push(Box::new(make));
        self
    }

    /// GET, and HEAD with it as HTTP requires (actix sends no body for HEAD).
    pub(crate) fn get<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args> + Guarded<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.operations.push((Method::GET, F::REQUIREMENT));
        self.operations.push((Method::HEAD, F::REQUIREMENT));
        self.route(move || {
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler.clone())
        })
    }

    /// POST.
    pub(crate) fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args> + Guarded<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::POST, handler)
    }

    /// PUT.
    pub(crate) fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args> + Guarded<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::PUT, handler)
    }

    /// DELETE.
    pub(crate) fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args> + Guarded<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::DELETE, handler)
    }

    fn method<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args> + Guarded<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.operations.push((method.clone(), F::REQUIREMENT));
        self.route(move || web::route().method(method.clone()).to(handler.clone()))
    }

    /// The path, as the OpenAPI document writes it.
    pub(crate) fn path(&self) -> &'static str {
        self.path
    }

    /// Each method with what it demands.
    pub(crate) fn operations(&self) -> &[(Method, Requirement)] {
        &self.operations
    }

    /// The `Allow` value: the methods answered.
    pub(crate) fn allow(&self) -> String {
        self.operations
            .iter()
            .map(|(method, _)| method.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Registers the routes at `prefix` (the mount's, or empty) and the path, in both
    /// forms (see [`Endpoint::register_form`]).
    pub(crate) fn register(self, cfg: &mut web::ServiceConfig, prefix: &str) {
        for form in Form::BOTH {
            self.register_form(cfg, prefix, form);
        }
    }

    /// Registers one form of the path at `prefix`, with 405 and `Allow` for any other
    /// method. Each request carries its route template ([`RouteName`]) for the metrics.
    ///
    /// The path without and with a trailing slash are two plain resources: one resource of
    /// two patterns is matched by a regex on every request. They are registered at their
    /// full path, not in a scope of the mount: a scope is one more router and one more
    /// boxed service call a request, about 2 % of greeting v1's CPU (perf).
    pub(crate) fn register_form(&self, cfg: &mut web::ServiceConfig, prefix: &str, form: Form) {
        let allow = self.allow();
        let name = RouteName(intern(&format!("{prefix}{}", self.path)));
        let bare = format!("{prefix}{}", self.path.trim_end_matches('/'));
        let full = match form {
            Form::Slash => format!("{bare}/"),
            Form::Bare => bare,
        };
        let resource = self
            .routes
            .iter()
            .fold(web::resource(full), |resource, make| resource.route(make()));
        cfg.service(
            resource
                .app_data(name)
                .default_service(web::to(move |req: HttpRequest| {
                    let error = ApiError::MethodNotAllowed {
                        method: req.method().to_string(),
                        allow: allow.clone(),
                    };
                    async move { Err::<HttpResponse, _>(error) }
                })),
        );
    }
}
