//! What every role shows operators: Prometheus text on `GET /metrics` and a
//! verdict on `GET /healthz`.
//!
//! A [`Role`] renders its section of `/metrics` into an [`Exposition`] and
//! judges its own [`Health`]. A gateway serves its own and those of the other
//! roles of its node on its port; a node without a gateway serves its roles
//! on a port of their own with [`MetricsServer`]. Metric names and each
//! role's health rule are listed in `docs/operations.md`.

mod histogram;
mod server;

use std::fmt::{Display, Write as _};
use std::sync::Arc;

use serde_json::{Map, Value};

pub use histogram::Histogram;
pub use server::MetricsServer;

/// A role as operators see it.
pub trait Role: Send + Sync {
    /// Its name in `/healthz` and in `flowtape_healthy{role}`.
    fn name(&self) -> &'static str;
    /// Its families of `/metrics` (names unique to the role).
    fn render(&self, out: &mut Exposition);
    /// Its verdict, from what it knows now (no I/O: roles sample in the background).
    fn health(&self) -> Health;
}

/// One role's verdict: healthy when nothing is a problem.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Conditions that make the role unhealthy (`/healthz` 503).
    pub problems: Vec<String>,
    /// Conditions worth knowing that do not (a feed honestly down upstream).
    pub notes: Vec<String>,
    /// The figures behind the verdict.
    pub facts: Map<String, Value>,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `{"ok":…, "problems":[…], "notes":[…], …facts}`.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("ok".into(), self.is_ok().into());
        body.insert("problems".into(), self.problems.clone().into());
        body.insert("notes".into(), self.notes.clone().into());
        body.extend(self.facts.clone());
        Value::Object(body)
    }
}

/// The roles of one node that a server shows besides its own (cheap to clone).
#[derive(Clone, Default)]
pub struct Roles(Vec<Arc<dyn Role>>);

impl Roles {
    pub fn new(roles: Vec<Arc<dyn Role>>) -> Roles {
        Roles(roles)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every role's families.
    pub fn render(&self, out: &mut Exposition) {
        for role in &self.0 {
            role.render(out);
        }
    }

    /// Every role's verdict, by name.
    pub fn health(&self) -> Vec<(&'static str, Health)> {
        self.0.iter().map(|r| (r.name(), r.health())).collect()
    }
}

/// `flowtape_healthy{role}`: 1 for each role whose `/healthz` verdict is
/// healthy now, 0 otherwise (Prometheus scrapes `/metrics`, not `/healthz`).
pub fn render_healthy<'a>(
    out: &mut Exposition,
    verdicts: impl IntoIterator<Item = (&'a str, bool)>,
) {
    out.labelled(
        "flowtape_healthy",
        Kind::Gauge,
        "1 when the role's /healthz verdict is healthy, 0 when it answers 503.",
        "role",
        verdicts.into_iter().map(|(role, ok)| (role, u8::from(ok))),
    );
}

/// The JSON object `{role: its health, …}` of `/healthz`.
pub fn health_json(verdicts: &[(&'static str, Health)]) -> Value {
    Value::Object(
        verdicts
            .iter()
            .map(|(role, h)| (role.to_string(), h.to_json()))
            .collect(),
    )
}

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Prometheus text format 0.0.4, family by family. Every family is written
/// whole (its `# HELP`, `# TYPE` and samples together), as the format requires.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A family with one label: one sample per `(label value, value)`.
    /// Label values are flowtape's own words and numbers, never escaped.
    pub fn labelled<L: Display, V: Display>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (L, V)>,
    ) {
        self.header(name, kind.name(), help);
        for (at, value) in samples {
            let _ = writeln!(self.text, "{name}{{{label}=\"{at}\"}} {value}");
        }
    }

    /// A latency histogram, in seconds.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        h.render_samples(&mut self.text, name);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_whole() {
        let mut out = Exposition::default();
        out.counter("a_total", "As.", 3);
        out.gauge("b", "B.", 1.5);
        out.labelled("c", Kind::Gauge, "C.", "k", [("x", 1), ("y", 0)]);
        render_healthy(&mut out, [("ingest", true), ("process", false)]);
        assert_eq!(
            out.into_text(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b B.\n# TYPE b gauge\nb 1.5\n\
             # HELP c C.\n# TYPE c gauge\nc{k=\"x\"} 1\nc{k=\"y\"} 0\n\
             # HELP flowtape_healthy 1 when the role's /healthz verdict is healthy, 0 when it answers 503.\n\
             # TYPE flowtape_healthy gauge\n\
             flowtape_healthy{role=\"ingest\"} 1\nflowtape_healthy{role=\"process\"} 0\n"
        );
    }

    #[test]
    fn health_is_ok_without_problems() {
        let mut h = Health::default();
        h.notes.push("feed down: market closed".into());
        assert!(h.is_ok());
        assert_eq!(h.to_json()["notes"][0], "feed down: market closed");
        h.problems.push("redis unreachable".into());
        assert!(!h.is_ok());
        assert_eq!(health_json(&[("ingest", h)])["ingest"]["ok"], false);
    }
}
