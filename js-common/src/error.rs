//! What a core error carries to JS: its message as JS spells it (camelCase setting names,
//! durations in ms), its stable `code` and the fields of its variant. Each binding builds its
//! host's `Error` from these (one small function each).

use healcache::settings::js_name;
use healcache::{Error, Host};

use crate::Js;

/// The message of `e` for a JS user.
pub fn error_message(e: &Error) -> String {
    e.message_for(Host::Js)
}

/// `code` ([`Error::code`]), then: `field` and `reason` for a bad option (its JS name, which the
/// wrapper spells as the user did, and the message after it); `reason` for a bad key, a value
/// the shared tier cannot encode and an unavailable shared tier;
/// `expected`/`current` for a version mismatch; the figures of a refusal at a bound (`len`,
/// `weight`, `max`, `afterMs`: Python's exceptions carry them too); `loadId` for a loader's
/// rejection (the wrapper hands back the rejection value it kept under that id).
pub fn error_props(e: &Error) -> Vec<(&'static str, Js)> {
    let mut props = vec![("code", Js::Str(e.code().to_string()))];
    match e {
        Error::InvalidConfig { field, problem, value, unit } => {
            props.push(("field", Js::Str(js_name(field).into_owned())));
            props.push(("reason", Js::Str(problem.text(Host::Js, *unit, *value))));
        }
        Error::InvalidKey { reason } => props.push(("reason", Js::Str(reason.to_string()))),
        // only the shared tier raises these (the WebAssembly module has none)
        #[cfg(feature = "tier")]
        Error::ValueNotEncodable { reason } | Error::L2Unavailable { reason } => {
            props.push(("reason", Js::Str(reason.clone())))
        }
        Error::VersionMismatch { expected, current } => {
            props.push(("expected", (*expected).into()));
            props.push(("current", (*current).into()));
        }
        Error::KeyTooLong { len, max } => {
            props.push(("len", Js::Num(*len as f64)));
            props.push(("max", Js::Num(*max as f64)));
        }
        Error::ValueTooLarge { weight, max } => {
            props.push(("weight", Js::Num(*weight as f64)));
            props.push(("max", Js::Num(*max as f64)));
        }
        Error::TooManyLoads { max } => props.push(("max", Js::Num(*max as f64))),
        #[cfg(feature = "tier")]
        Error::QueueFull { max } => props.push(("max", Js::Num(*max as f64))),
        Error::LoadTimeout { after_ms } => props.push(("afterMs", Js::Num(*after_ms as f64))),
        Error::Loader(le) => {
            if let Some(id) = le.downcast_ref::<f64>() {
                props.push(("loadId", Js::Num(*id)));
            }
        }
        _ => {}
    }
    props
}
