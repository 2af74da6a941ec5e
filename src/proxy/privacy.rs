//! The compatibility endpoints of the gateways Lethe's users come from, answered truthfully:
//! `GET /api/status`, `POST /v1/privacy/delete` and `POST /v1/privacy/export`.
//!
//! # Rules
//! - Lethe stores no request, response, log or user record, so a deletion deletes nothing and
//!   an export is empty, in the format asked for (`json` or `csv`).
//! - No answer echoes the request: not the `user_id` (it identifies a person), not any other
//!   field. Answers are built from constants and the process's own state.
//! - `/api/status` reports the sandbox as [`crate::sandbox::lockdown`] left it, kept in memory;
//!   nothing is read from files on the request path.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::body::{full, ProxyBody};
use super::error::ProxyError;
use crate::config::SeccompAction;
use crate::sandbox::SandboxState;

/// `GET /api/status`.
pub fn status(sandbox: SandboxState, statsd: bool) -> Response<ProxyBody> {
    json_response(
        StatusCode::OK,
        json!({
            "status": "ok",
            "service": "lethe",
            "version": env!("CARGO_PKG_VERSION"),
            "zero_log": true,
            "request_log_default_enabled": false,
            "request_log_default_retention_days": 0,
            "request_log_max_retention_days": 0,
            "stores_requests": false,
            "stores_responses": false,
            "metrics": {"statsd": statsd, "content": false},
            "sandbox": {
                "seccomp": if sandbox.seccomp.is_some() { "filter" } else { "disabled" },
                "seccomp_action": sandbox.seccomp.map(SeccompAction::name),
                "landlock_abi": sandbox.landlock_abi,
                "landlock_all_threads": sandbox.landlock_all_threads,
                "dumpable": sandbox.dumpable,
                "memory_locked": sandbox.memory_locked,
            },
        })
        .to_string(),
        "application/json",
    )
}

/// A deletion or export request, in the shapes other gateways accept. Fields are checked for
/// type and dropped; none is kept or echoed.
#[derive(Deserialize)]
struct PrivacyRequest {
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    #[serde(default)]
    delete_type: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    include_logs: Option<bool>,
}

/// The export format asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExportFormat {
    Json,
    Csv,
}

fn parse(body: &[u8]) -> Result<PrivacyRequest, ProxyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PrivacyRequest {
            user_id: None,
            delete_type: None,
            format: None,
            include_logs: None,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ProxyError::Malformed)?;
    if !value.is_object() {
        return Err(ProxyError::Malformed);
    }
    let request: PrivacyRequest =
        serde_json::from_value(value).map_err(|_| ProxyError::Malformed)?;
    if request
        .user_id
        .as_ref()
        .is_some_and(|id| !(id.is_string() || id.is_number() || id.is_null()))
    {
        return Err(ProxyError::Malformed);
    }
    Ok(request)
}

/// `POST /v1/privacy/delete`: nothing is stored, so nothing is deleted.
pub fn delete(body: &[u8]) -> Result<Response<ProxyBody>, ProxyError> {
    let request = parse(body)?;
    let _ = (request.user_id, request.format, request.include_logs);
    let scope = match request.delete_type.as_deref() {
        None | Some("all") => "all",
        Some("logs" | "request_logs") => "logs",
        Some("user_data" | "data" | "pii") => "user_data",
        Some("metrics") => "metrics",
        Some(_) => return Err(ProxyError::Malformed),
    };
    Ok(json_response(
        StatusCode::OK,
        json!({
            "status": "ok",
            "nothing_stored": true,
            "delete_type": scope,
            "records_deleted": 0,
            "records_stored": 0,
            "message": "Lethe stores no requests, responses, logs or user records; there was nothing to delete.",
        })
        .to_string(),
        "application/json",
    ))
}

/// `POST /v1/privacy/export`: an empty export in the requested format.
pub fn export(body: &[u8]) -> Result<Response<ProxyBody>, ProxyError> {
    let request = parse(body)?;
    let format = match request.format.as_deref() {
        None | Some("json") => ExportFormat::Json,
        Some("csv") => ExportFormat::Csv,
        Some(_) => return Err(ProxyError::Malformed),
    };
    let include_logs = request.include_logs.unwrap_or(false);
    Ok(match format {
        ExportFormat::Json => {
            let mut value = json!({
                "status": "ok",
                "format": "json",
                "records": [],
                "record_count": 0,
                "nothing_stored": true,
                "message": "Lethe stores no requests, responses, logs or user records; the export is empty.",
            });
            if include_logs {
                value["logs"] = json!([]);
            }
            json_response(StatusCode::OK, value.to_string(), "application/json")
        }
        ExportFormat::Csv => json_response(
            StatusCode::OK,
            "record_type,created_at,model,input_tokens,output_tokens\r\n".to_owned(),
            "text/csv; charset=utf-8",
        ),
    })
}

fn json_response(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn text(r: Response<ProxyBody>) -> String {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn answers_never_echo_the_user() {
        let body = br#"{"user_id": "jane.doe@example.com", "delete_type": "all"}"#;
        let out = text(delete(body).unwrap());
        assert!(!out.contains("jane"), "{out}");
        assert!(out.contains("\"records_deleted\":0"), "{out}");
        let out =
            text(export(br#"{"user_id": "jane", "format": "csv", "include_logs": true}"#).unwrap());
        assert_eq!(out.lines().count(), 1, "a header only: {out}");
        let out = text(export(br#"{"user_id": "jane", "include_logs": true}"#).unwrap());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["records"], json!([]));
        assert_eq!(v["logs"], json!([]));
        assert!(!out.contains("jane"));
        assert_eq!(
            export(br#"{"format": "xml"}"#).unwrap_err(),
            ProxyError::Malformed
        );
        assert_eq!(delete(b"[1]").unwrap_err(), ProxyError::Malformed);
    }
}
