//! The shape of a call's arguments, found in one walk: how deep they nest, and whether an object
//! in them uses the key Airlock reserves for redaction markers. Pure.

use serde_json::{Map, Value};

/// What one walk over the arguments finds: the deepest nesting of a value in them, and whether
/// an object in them uses the redaction marker's key (reserved for Airlock).
#[derive(Default)]
pub(super) struct Shape {
    pub(super) depth: usize,
    pub(super) reserved: bool,
}

impl Shape {
    pub(super) fn of_arguments(arguments: &Map<String, Value>) -> Shape {
        let mut s = arguments
            .values()
            .map(Shape::of)
            .fold(Shape::default(), Shape::max);
        s.reserved |= arguments.contains_key(crate::redact::MARKER);
        s
    }

    fn of(v: &Value) -> Shape {
        let inner = match v {
            Value::Array(a) => a.iter().map(Shape::of).fold(Shape::default(), Shape::max),
            Value::Object(o) => Shape::of_arguments(o),
            _ => return Shape::default(),
        };
        Shape {
            depth: inner.depth + 1,
            ..inner
        }
    }

    fn max(self, other: Shape) -> Shape {
        Shape {
            depth: self.depth.max(other.depth),
            reserved: self.reserved || other.reserved,
        }
    }
}
