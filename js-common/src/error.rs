//! What a core error carries to JS, besides its message: the stable `code` and the fields of
//! its variant. Each binding builds its host's `Error` from these (one small function each).

use healcache::Error;

use crate::Js;

/// `code` ([`Error::code`]), then `field` for a bad option (the core's name; the wrapper spells
/// it as the user did), `expected`/`current` for a version mismatch, and `loadId` for a loader's
/// rejection (the wrapper hands back the rejection value it kept under that id).
pub fn error_props(e: &Error) -> Vec<(&'static str, Js)> {
    let mut props = vec![("code", Js::Str(e.code().to_string()))];
    match e {
        Error::InvalidConfig { field, .. } => props.push(("field", Js::Str(field.to_string()))),
        Error::VersionMismatch { expected, current } => {
            props.push(("expected", (*expected).into()));
            props.push(("current", (*current).into()));
        }
        Error::Loader(le) => {
            if let Some(id) = le.downcast_ref::<f64>() {
                props.push(("loadId", Js::Num(*id)));
            }
        }
        _ => {}
    }
    props
}
