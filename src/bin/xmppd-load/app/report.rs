//! The summary a run prints: ordered key/value pairs, as text for people or
//! as one JSON object for scripts (`--json`).

use std::fmt::Write as _;

/// One value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Num(f64),
    Str(String),
    Null,
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v as i64)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        if v.is_finite() {
            Value::Num(v)
        } else {
            Value::Null
        }
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// A run's results, in the order they were added.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub fields: Vec<(String, Value)>,
}

impl Report {
    /// Add or replace `key`.
    pub fn set(&mut self, key: &str, v: impl Into<Value>) {
        let v = v.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((key.to_owned(), v)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An integer field (0 when absent or not a number).
    pub fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            Some(Value::Int(i)) => *i,
            Some(Value::Num(n)) => *n as i64,
            _ => 0,
        }
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, k);
            s.push(':');
            match v {
                Value::Int(n) => {
                    let _ = write!(s, "{n}");
                }
                Value::Num(n) => {
                    let _ = write!(s, "{}", (n * 1000.0).round() / 1000.0);
                }
                Value::Str(t) => json_str(&mut s, t),
                Value::Null => s.push_str("null"),
            }
        }
        s.push('}');
        s
    }

    /// Aligned `key: value` lines.
    pub fn to_text(&self) -> String {
        let w = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (k, v) in &self.fields {
            let v = match v {
                Value::Int(n) => n.to_string(),
                Value::Num(n) => format!("{n:.3}"),
                Value::Str(t) => t.clone(),
                Value::Null => "-".into(),
            };
            let _ = writeln!(s, "{k:<w$}  {v}");
        }
        s
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let mut r = Report::default();
        r.set("a", 1u64);
        r.set("b", 0.5);
        r.set("c", "x\"y");
        r.set("d", None::<u64>);
        r.set("a", 2u64);
        assert_eq!(r.to_json(), r#"{"a":2,"b":0.5,"c":"x\"y","d":null}"#);
        assert_eq!(r.int("a"), 2);
    }
}
