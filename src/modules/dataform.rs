//! XEP-0004 Data Forms: building forms and results, reading submissions.

use crate::stanza::StanzaError;
use crate::xml::Element;
use std::collections::HashMap;

/// The `jabber:x:data` namespace.
pub const NS: &str = "jabber:x:data";

/// One field of a form (XEP-0004 §3.2).
#[derive(Clone, Debug, Default)]
pub struct Field {
    /// `var`.
    pub var: &'static str,
    /// `type` (§3.3), e.g. `jid-single`, `text-private`; empty: none.
    pub ty: &'static str,
    /// Human-readable label.
    pub label: &'static str,
    /// `<required/>`.
    pub required: bool,
    /// Values.
    pub values: Vec<String>,
    /// `(label, value)` options for list types.
    pub options: Vec<(&'static str, &'static str)>,
}

impl Field {
    /// A field of `ty` named `var`.
    pub fn new(var: &'static str, ty: &'static str, label: &'static str) -> Field {
        Field { var, ty, label, ..Field::default() }
    }
    /// Mark it `<required/>`.
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    /// Add a value.
    pub fn value(mut self, v: impl Into<String>) -> Field {
        self.values.push(v.into());
        self
    }
    /// Add options.
    pub fn options(mut self, o: &[(&'static str, &'static str)]) -> Field {
        self.options.extend_from_slice(o);
        self
    }

    fn element(&self) -> Element {
        let mut f = Element::new("field", NS).with_attr("var", self.var);
        if !self.ty.is_empty() {
            f.set_attr("type", self.ty);
        }
        if !self.label.is_empty() {
            f.set_attr("label", self.label);
        }
        if self.required {
            f = f.with_child(Element::new("required", NS));
        }
        for (label, value) in &self.options {
            f = f.with_child(
                Element::new("option", NS)
                    .with_attr("label", *label)
                    .with_child(Element::new("value", NS).with_text(*value)),
            );
        }
        for v in &self.values {
            f = f.with_child(Element::new("value", NS).with_text(v));
        }
        f
    }
}

/// A `<x type='form|result'/>` with a hidden FORM_TYPE field first (§3.1,
/// XEP-0068).
pub fn build(ty: &str, form_type: &str, title: Option<&str>, instructions: Option<&str>, fields: &[Field]) -> Element {
    let mut x = Element::new("x", NS).with_attr("type", ty);
    if let Some(t) = title {
        x = x.with_child(Element::new("title", NS).with_text(t));
    }
    if let Some(i) = instructions {
        x = x.with_child(Element::new("instructions", NS).with_text(i));
    }
    x = x.with_child(Field::new("FORM_TYPE", "hidden", "").value(form_type).element());
    for f in fields {
        x = x.with_child(f.element());
    }
    x
}

/// The values of a submitted form (§3.4), by `var`. A form that is not
/// `type='submit'`, or whose FORM_TYPE (when given) is not `form_type`, is
/// `Err(bad)`.
pub fn submitted(x: &Element, form_type: &str, bad: StanzaError) -> Result<HashMap<String, Vec<String>>, StanzaError> {
    if !x.is("x", NS) || x.attr("type") != Some("submit") {
        return Err(bad);
    }
    let mut out = HashMap::new();
    for f in x.elements().filter(|f| f.is("field", NS)) {
        let Some(var) = f.attr("var") else { continue };
        let values: Vec<String> = f.elements().filter(|v| v.is("value", NS)).map(|v| v.text()).collect();
        out.insert(var.to_string(), values);
    }
    match out.get("FORM_TYPE").map(Vec::as_slice) {
        None => Ok(out),
        Some([t]) if t == form_type => Ok(out),
        _ => Err(bad),
    }
}

/// The single value of `var` (trimmed), if any and not empty.
pub fn single<'a>(values: &'a HashMap<String, Vec<String>>, var: &str) -> Option<&'a str> {
    values.get(var).and_then(|v| v.first()).map(|s| s.trim()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_forms() {
        let x = build(
            "form",
            "urn:t",
            Some("T"),
            None,
            &[Field::new("a", "jid-single", "A").required(), Field::new("n", "list-single", "").options(&[("1", "1")])],
        );
        let mut s = String::new();
        x.write_to(&mut s, "");
        assert_eq!(
            s,
            "<x xmlns='jabber:x:data' type='form'><title>T</title><field var='FORM_TYPE' type='hidden'><value>urn:t</value></field>\
             <field var='a' type='jid-single' label='A'><required/></field>\
             <field var='n' type='list-single'><option label='1'><value>1</value></option></field></x>"
        );
        let sub = Element::parse(
            b"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:t</value></field>\
              <field var='a'><value> x@y </value></field><field var='m'><value>1</value><value>2</value></field></x>",
            "jabber:client",
        )
        .unwrap();
        let v = submitted(&sub, "urn:t", StanzaError::BadRequest).unwrap();
        assert_eq!(single(&v, "a"), Some("x@y"));
        assert_eq!(v["m"], vec!["1", "2"]);
        assert_eq!(single(&v, "zz"), None);
        assert!(submitted(&sub, "urn:other", StanzaError::BadRequest).is_err());
        assert!(submitted(&x, "urn:t", StanzaError::BadRequest).is_err());
    }
}
