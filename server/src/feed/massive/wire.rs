//! The Massive WebSocket wire format: decoding frames, encoding actions.
//!
//! Every text frame the server sends is a JSON array of messages, each tagged
//! by `ev`: `status`, `T` (trade), `Q` (quote), and others this feed does not
//! use. [`decode_frame`] rejects a frame that is not a JSON array as a whole,
//! and decodes each element on its own, so one bad element costs one record,
//! not the frame.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

/// One decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<'a> {
    /// `{"ev":"status","status":"auth_success","message":"authenticated"}`.
    Status {
        status: Cow<'a, str>,
        message: Cow<'a, str>,
    },
    Trade(Trade<'a>),
    Quote(Quote<'a>),
    /// A well-formed message of a type this feed does not handle.
    Other {
        ev: Cow<'a, str>,
    },
}

/// `{"ev":"T","sym":"O:AMC210827C00037000","x":65,"p":1.54,"s":1,"c":[233],"t":1629820676333,"q":651921857}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trade<'a> {
    pub sym: Cow<'a, str>,
    /// Exchange (participant) id.
    pub exchange: u16,
    pub price: f64,
    pub size: u32,
    pub conditions: Vec<u16>,
    /// SIP time, ms since the epoch.
    pub t_ms: i64,
    /// Sequence number: increasing per symbol, not contiguous.
    pub seq: u64,
}

/// `{"ev":"Q","sym":"O:…","bx":..,"ax":..,"bp":..,"ap":..,"bs":..,"as":..,"t":..,"q":..}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quote<'a> {
    pub sym: Cow<'a, str>,
    pub bid: f64,
    pub ask: f64,
    /// SIP time, ms since the epoch.
    pub t_ms: i64,
    pub seq: u64,
}

/// A frame that cannot be read at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid JSON: {0}")]
    Json(String),
    #[error("frame is a JSON {0}, not an array of messages")]
    NotArray(&'static str),
    #[error("binary frame ({0} bytes); the protocol is text only")]
    Binary(usize),
}

/// One element of a frame that is not a usable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("message {index} of the frame: {reason}")]
pub struct ElementError {
    /// 0-based position in the frame.
    pub index: usize,
    pub reason: String,
}

/// Every field any handled message has; each message type checks its own.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    ev: Cow<'a, str>,
    #[serde(borrow, default)]
    sym: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    x: Option<u16>,
    p: Option<f64>,
    s: Option<u32>,
    c: Option<Vec<u16>>,
    t: Option<i64>,
    q: Option<u64>,
    bp: Option<f64>,
    ap: Option<f64>,
}

/// Decodes one text frame into its messages, each on its own.
pub fn decode_frame(text: &str) -> Result<Vec<Result<Message<'static>, ElementError>>, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(FrameError::NotArray(json_kind(&value)));
    };
    // Elements borrow from the parsed `Value`, which is dropped here: the
    // few strings a message keeps are copied out.
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            decode_message(item)
                .map(Message::into_owned)
                .map_err(|reason| ElementError { index, reason })
        })
        .collect())
}

fn decode_message(item: &Value) -> Result<Message<'_>, String> {
    let f = Fields::deserialize(item).map_err(|e| e.to_string())?;
    match f.ev.as_ref() {
        "status" => Ok(Message::Status {
            status: f.status.ok_or("status message without `status`")?,
            message: f.message.unwrap_or_default(),
        }),
        "T" => {
            let price = need(f.p, "p")?;
            if price < 0.0 {
                return Err(format!("trade price {price} is negative"));
            }
            Ok(Message::Trade(Trade {
                sym: need(f.sym, "sym")?,
                exchange: need(f.x, "x")?,
                price,
                size: need(f.s, "s")?,
                conditions: f.c.unwrap_or_default(),
                t_ms: need(f.t, "t")?,
                seq: need(f.q, "q")?,
            }))
        }
        "Q" => {
            let bid = need(f.bp, "bp")?;
            let ask = need(f.ap, "ap")?;
            if bid < 0.0 || ask < 0.0 {
                return Err(format!("quote {bid} x {ask} has a negative price"));
            }
            Ok(Message::Quote(Quote {
                sym: need(f.sym, "sym")?,
                bid,
                ask,
                t_ms: need(f.t, "t")?,
                seq: need(f.q, "q")?,
            }))
        }
        _ => Ok(Message::Other { ev: f.ev }),
    }
}

fn need<T>(v: Option<T>, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("missing `{field}`"))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Message<'_> {
    fn into_owned(self) -> Message<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Message::Status { status, message } => Message::Status {
                status: own(status),
                message: own(message),
            },
            Message::Trade(t) => Message::Trade(Trade {
                sym: own(t.sym),
                ..t
            }),
            Message::Quote(q) => Message::Quote(Quote {
                sym: own(q.sym),
                ..q
            }),
            Message::Other { ev } => Message::Other { ev: own(ev) },
        }
    }
}

/// `{"action":"auth","params":"<key>"}`. Contains the key: never log it.
pub fn auth_action(key: &str) -> String {
    serde_json::json!({ "action": "auth", "params": key }).to_string()
}

/// `{"action":"subscribe","params":"T.*,Q.*"}`.
pub fn subscribe_action(params: &str) -> String {
    serde_json::json!({ "action": "subscribe", "params": params }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Message<'static>, ElementError> {
        let mut v = decode_frame(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn decodes_the_documented_messages() {
        let t = one(concat!(
            r#"[{"ev":"T","sym":"O:AMC210827C00037000","x":65,"p":1.54,"s":1,"c":[233],"#,
            r#""t":1629820676333,"q":651921857}]"#
        ));
        assert_eq!(
            t,
            Ok(Message::Trade(Trade {
                sym: "O:AMC210827C00037000".into(),
                exchange: 65,
                price: 1.54,
                size: 1,
                conditions: vec![233],
                t_ms: 1_629_820_676_333,
                seq: 651_921_857,
            }))
        );
        let q = one(concat!(
            r#"[{"ev":"Q","sym":"O:SPY241220C00500000","bx":302,"ax":302,"bp":9.46,"ap":9.47,"#,
            r#""bs":17,"as":24,"t":1644506128351,"q":844090872}]"#
        ));
        assert!(matches!(
            q,
            Ok(Message::Quote(Quote {
                bid: 9.46,
                ask: 9.47,
                ..
            }))
        ));
        let s = one(r#"[{"ev":"status","status":"auth_success","message":"authenticated"}]"#);
        assert_eq!(
            s,
            Ok(Message::Status {
                status: "auth_success".into(),
                message: "authenticated".into()
            })
        );
        assert_eq!(
            one(r#"[{"ev":"A","sym":"O:X"}]"#),
            Ok(Message::Other { ev: "A".into() })
        );
    }

    #[test]
    fn a_bad_element_costs_only_itself() {
        let v = decode_frame(
            r#"[{"ev":"T","sym":"O:X","x":"a"},{"ev":"status","status":"success"},7]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.len(), 3);
        assert!(v[0].is_err() && v[1].is_ok() && v[2].is_err());
        assert_eq!(v[2].as_ref().err().map(|e| e.index), Some(2));
        assert!(one(r#"[{"ev":"T","sym":"O:X","x":1,"s":1,"t":1,"q":1}]"#)
            .err()
            .is_some_and(|e| e.reason.contains("`p`")));
        assert!(one(r#"[{"ev":"Q","sym":"O:X","bp":-1,"ap":1,"t":1,"q":1}]"#).is_err());
        assert!(one(r#"[{"ev":"T","sym":"O:X","x":70000,"p":1,"s":1,"t":1,"q":1}]"#).is_err());
    }

    #[test]
    fn frames_must_be_json_arrays() {
        assert!(matches!(
            decode_frame("{not json"),
            Err(FrameError::Json(_))
        ));
        assert_eq!(
            decode_frame(r#"{"ev":"status"}"#).err(),
            Some(FrameError::NotArray("object"))
        );
        assert_eq!(decode_frame("[]").map(|v| v.len()), Ok(0));
    }

    #[test]
    fn actions_are_the_documented_json() {
        assert_eq!(
            auth_action("k\"ey"),
            r#"{"action":"auth","params":"k\"ey"}"#
        );
        assert_eq!(
            subscribe_action("T.*,Q.*"),
            r#"{"action":"subscribe","params":"T.*,Q.*"}"#
        );
    }
}
