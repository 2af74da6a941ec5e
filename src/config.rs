//! Configuration in two stages: [`RawConfig`] is what the TOML file says (serde,
//! `deny_unknown_fields`), [`Config`] is what Lethe runs with, validated and with every secret
//! loaded into a [`SecretString`].
//!
//! # Guarantees
//! - Everything is read here, once, before the sandbox locks: the config file, the dictionary
//!   file, provider keys from environment variables or systemd credentials, TLS material.
//! - Errors name the offending key (`route[1].key.env`) and the file's path, never a value: the
//!   file holds dictionary terms (customer names) and error text goes to stderr.
//! - `Debug` is safe to print: keys are `SecretString`, client keys are SHA-256 hashes.
//!
//! With no file at all, [`Config::default_config`] is the built-in default: listen on
//! `127.0.0.1:8080`, OpenAI-style paths to `https://api.openai.com`, `/v1/messages` to
//! `https://api.anthropic.com`, the client's own key passed through, the default policy.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Scheme, Uri};
use secrecy::SecretString;
use serde::Deserialize;

use crate::metrics::{valid_tag_value, StatsdSettings, RESERVED_TAG_KEYS};
use crate::proxy::usage::Price;
use crate::scrub::{Kind, KindSet, Policy, PolicyError, Scrubber, Style};

/// Why a configuration was refused. `Display` names keys and paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid TOML.
    #[error("{path}: not valid TOML (line {line})")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
    },
    /// A key is unknown, missing, or has the wrong type.
    #[error("{path}: `{key}`: {problem}")]
    Key {
        /// The file (or `built-in default`).
        path: PathBuf,
        /// Dotted path of the key, `route[0].base_url`.
        key: String,
        /// What is wrong, in static words.
        problem: String,
    },
}

/// The file as written. Every table rejects unknown keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    route: Option<Vec<RawRoute>>,
    #[serde(default)]
    sandbox: RawSandbox,
    statsd: Option<RawStatsd>,
    #[serde(default)]
    prices: BTreeMap<String, RawPrice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatsd {
    address: Option<String>,
    prefix: Option<String>,
    tags: Option<bool>,
    #[serde(default)]
    global_tags: BTreeMap<String, String>,
    #[serde(default)]
    attribution: Vec<String>,
    attribution_max_values: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: f64,
    output: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allow_plaintext: Option<bool>,
    max_body_bytes: Option<u64>,
    max_response_bytes: Option<u64>,
    max_connections: Option<u64>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_event_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    pool_max_idle_per_host: Option<u64>,
    extra_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    types: Option<Vec<String>>,
    style: Option<String>,
    styles: Option<toml::Table>,
    terms: Option<Vec<String>>,
    dictionary: Option<PathBuf>,
    allow_client_lower: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    client_key_sha256: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    lock_memory: Option<bool>,
    seccomp_action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    format: String,
    base_url: String,
    #[serde(default)]
    models: Vec<String>,
    key: RawKey,
    #[serde(default)]
    fallback: Vec<String>,
    #[serde(default)]
    hipaa_baa: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawKey {
    Word(String),
    Source(RawKeySource),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeySource {
    env: Option<String>,
    credential: Option<String>,
}

/// The wire format a route speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI-compatible: chat completions, completions, embeddings, responses, models.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Format {
    /// The name used in the config file.
    pub const fn name(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
        }
    }
}

/// Where a route's provider key comes from.
#[derive(Clone)]
pub enum ProviderKey {
    /// The client's own `Authorization` / `x-api-key` header is forwarded as it is.
    Passthrough,
    /// The operator's key, injected into every request on this route.
    Secret(SecretString),
}

impl fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderKey::Passthrough => f.write_str("Passthrough"),
            ProviderKey::Secret(_) => f.write_str("Secret([redacted])"),
        }
    }
}

/// One upstream provider.
#[derive(Clone, Debug)]
pub struct Route {
    /// The operator's name for it (also a metric tag).
    pub name: String,
    /// Its wire format.
    pub format: Format,
    /// Scheme, authority and optional path prefix; the request path is appended.
    pub base_url: Uri,
    /// Model globs (`gpt-4o*`); empty means any model.
    pub models: Vec<String>,
    /// The key sent upstream.
    pub key: ProviderKey,
    /// Indexes into [`Config::routes`] tried, in order, when this route fails before its first
    /// response byte.
    pub fallback: Vec<usize>,
    /// The operator has a HIPAA business associate agreement with this provider.
    pub hipaa_baa: bool,
}

impl Route {
    /// Whether this route serves `model` (`None`: the request names no model).
    pub fn serves(&self, model: Option<&str>) -> bool {
        match model {
            _ if self.models.is_empty() => true,
            None => false,
            Some(model) => self.models.iter().any(|g| glob_match(g, model)),
        }
    }
}

/// Validated server settings.
#[derive(Clone, Debug)]
pub struct Server {
    /// Listen address.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; `None` serves plain HTTP (loopback only unless
    /// `allow_plaintext`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Whether plain HTTP may be served on a non-loopback address (checked again for a
    /// listener systemd passes in, whose address the config does not know).
    pub allow_plaintext: bool,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Largest non-streamed upstream response accepted (502 beyond).
    pub max_response_bytes: usize,
    /// Largest single SSE event accepted from upstream.
    pub max_event_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Longest pause allowed while a client sends its request body.
    pub body_timeout: Duration,
    /// Keep-alive idle time before a client connection is closed.
    pub idle_timeout: Duration,
}

/// Validated upstream client settings.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers.
    pub first_byte_timeout: Duration,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// PEM certificates trusted for upstream TLS besides the Mozilla roots (a private CA in
    /// front of a self-hosted model), read at start-up.
    pub extra_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// What a seccomp violation does (`sandbox.seccomp_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeccompAction {
    /// The process is killed (`SECCOMP_RET_KILL_PROCESS`): fail closed.
    #[default]
    Kill,
    /// The call fails with `EPERM` and the process goes on.
    Errno,
    /// The call is allowed and the kernel logs it (audit): for staging a new deployment.
    Log,
}

impl SeccompAction {
    /// The action named `name` in the config file.
    pub fn parse(name: &str) -> Option<SeccompAction> {
        match name {
            "kill" => Some(SeccompAction::Kill),
            "errno" => Some(SeccompAction::Errno),
            "log" => Some(SeccompAction::Log),
            _ => None,
        }
    }

    /// The name used in the config file.
    pub const fn name(self) -> &'static str {
        match self {
            SeccompAction::Kill => "kill",
            SeccompAction::Errno => "errno",
            SeccompAction::Log => "log",
        }
    }
}

/// Validated sandbox settings, applied by [`crate::sandbox::lockdown`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// `mlockall` current and future memory, so content never reaches swap.
    pub lock_memory: bool,
    /// What a syscall outside the allowlist does.
    pub seccomp_action: SeccompAction,
}

/// The scrubbing floor: what every request gets at least.
#[derive(Clone)]
pub struct Floor {
    /// The operator's policy.
    pub policy: Policy,
    /// Whether `X-PII-*` headers may switch detection off or remove types.
    pub allow_client_lower: bool,
}

impl fmt::Debug for Floor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Floor")
            .field("kinds", &self.policy.kinds())
            .field("allow_client_lower", &self.allow_client_lower)
            .finish_non_exhaustive()
    }
}

/// A client key, stored as its SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// What Lethe runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listener and limits.
    pub server: Server,
    /// Upstream client.
    pub upstream: Upstream,
    /// Scrubbing floor.
    pub floor: Floor,
    /// Gateway client keys; empty means no gateway authentication.
    pub client_keys: Vec<KeyHash>,
    /// Upstream routes, in the order they are matched.
    pub routes: Vec<Route>,
    /// Process lockdown.
    pub sandbox: Sandbox,
    /// Where metrics go; `None` emits nothing.
    pub statsd: Option<StatsdSettings>,
    /// Attribution tag keys clients may set (`X-Lethe-Tag-<key>`).
    pub attribution: Vec<String>,
    /// Distinct values kept per attribution key.
    pub attribution_max_values: usize,
    /// The operator's prices (USD per million tokens), over the built-in table.
    pub prices: Vec<(String, Price)>,
}

/// Command-line overrides applied on top of the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--openai-upstream`: base URL of every `openai`-format route.
    pub openai_upstream: Option<String>,
    /// `--anthropic-upstream`: base URL of every `anthropic`-format route.
    pub anthropic_upstream: Option<String>,
    /// `--statsd`: the StatsD daemon, `HOST:PORT`.
    pub statsd: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    /// The built-in default, with `overrides` applied.
    pub fn default_config(overrides: &Overrides) -> Result<Config, ConfigError> {
        validate(
            RawConfig::default(),
            Path::new("built-in default"),
            overrides,
        )
    }

    /// Reads and validates `path`, with `overrides` applied.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|_| ConfigError::Read {
            path: path.to_owned(),
        })?;
        let raw = parse(&text, path)?;
        validate(raw, path, overrides)
    }
}

/// Parses TOML text into the raw config. Errors carry the key's path, never the value.
pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e.span().map_or(0, |s| s.start);
        ConfigError::Syntax {
            path: path.to_owned(),
            line: text[..at.min(text.len())].matches('\n').count() + 1,
        }
    })?;
    serde_path_to_error::deserialize(table).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().to_string();
        ConfigError::Key {
            path: path.to_owned(),
            problem: describe_serde(&message),
            key,
        }
    })
}

/// Turns a serde message into static words plus, at most, a key name: serde's own messages
/// quote the offending value.
fn describe_serde(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name: String = rest
            .chars()
            .take_while(|&c| c != '`')
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(64)
            .collect();
        return format!("unknown key `{name}`");
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name: String = rest.chars().take_while(|&c| c != '`').take(64).collect();
        return format!("missing key `{name}`");
    }
    if message.starts_with("invalid type") {
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, e)| e)
            .filter(|e| e.len() < 64 && !e.contains('"'))
            .unwrap_or("another type");
        return format!("wrong type, expected {expected}");
    }
    if message.starts_with("data did not match any variant") {
        return "expected \"passthrough\" or a table with `env` or `credential`".to_owned();
    }
    "invalid value".to_owned()
}

fn key_error(path: &Path, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        path: path.to_owned(),
        key: key.into(),
        problem: problem.into(),
    }
}

fn millis(
    path: &Path,
    key: &str,
    value: Option<u64>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let ms = value.unwrap_or(default);
    if ms == 0 || ms > 24 * 3600 * 1000 {
        return Err(key_error(path, key, "must be between 1 and 86400000"));
    }
    Ok(Duration::from_millis(ms))
}

fn size(
    path: &Path,
    key: &str,
    value: Option<u64>,
    default: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let n = value.unwrap_or(default);
    if n == 0 || n > max {
        return Err(key_error(path, key, format!("must be between 1 and {max}")));
    }
    usize::try_from(n).map_err(|_| key_error(path, key, "too large"))
}

/// Validates the raw config against the rules in `examples/lethe.toml`.
pub fn validate(raw: RawConfig, path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let server = validate_server(&raw.server, path, overrides)?;
    let upstream = Upstream {
        connect_timeout: millis(
            path,
            "upstream.connect_timeout_ms",
            raw.upstream.connect_timeout_ms,
            5_000,
        )?,
        first_byte_timeout: millis(
            path,
            "upstream.first_byte_timeout_ms",
            raw.upstream.first_byte_timeout_ms,
            120_000,
        )?,
        pool_idle_timeout: millis(
            path,
            "upstream.pool_idle_timeout_ms",
            raw.upstream.pool_idle_timeout_ms,
            90_000,
        )?,
        pool_max_idle_per_host: size(
            path,
            "upstream.pool_max_idle_per_host",
            raw.upstream.pool_max_idle_per_host,
            64,
            4096,
        )?,
        extra_ca: match &raw.upstream.extra_ca {
            None => Vec::new(),
            Some(file) => load_ca(file)?,
        },
    };
    let floor = validate_policy(&raw.policy, path)?;
    let client_keys = validate_client_keys(&raw.auth, path)?;
    let routes = validate_routes(raw.route, path, overrides, !client_keys.is_empty())?;
    let sandbox = validate_sandbox(&raw.sandbox, path)?;
    let raw_statsd = raw.statsd.unwrap_or_default();
    let statsd = validate_statsd(&raw_statsd, path, overrides)?;
    let attribution = validate_attribution(&raw_statsd.attribution, path)?;
    let attribution_max_values = size(
        path,
        "statsd.attribution_max_values",
        raw_statsd.attribution_max_values,
        100,
        10_000,
    )?;
    let prices = validate_prices(&raw.prices, path)?;
    Ok(Config {
        server,
        upstream,
        floor,
        client_keys,
        routes,
        sandbox,
        statsd,
        attribution,
        attribution_max_values,
        prices,
    })
}

fn validate_sandbox(raw: &RawSandbox, path: &Path) -> Result<Sandbox, ConfigError> {
    let seccomp_action = match raw.seccomp_action.as_deref() {
        None => SeccompAction::default(),
        Some(name) => SeccompAction::parse(name).ok_or_else(|| {
            key_error(
                path,
                "sandbox.seccomp_action",
                "expected kill, errno or log",
            )
        })?,
    };
    Ok(Sandbox {
        lock_memory: raw.lock_memory.unwrap_or(false),
        seccomp_action,
    })
}

fn validate_statsd(
    raw: &RawStatsd,
    path: &Path,
    overrides: &Overrides,
) -> Result<Option<StatsdSettings>, ConfigError> {
    // Checked even without an address: a mistake is reported before someone adds one.
    let prefix = raw.prefix.clone().unwrap_or_else(|| "lethe".to_owned());
    let prefix_ok = prefix.len() <= 64
        && !prefix.starts_with('.')
        && !prefix.ends_with('.')
        && !prefix.contains("..")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !prefix_ok {
        return Err(key_error(
            path,
            "statsd.prefix",
            "expected up to 64 of [A-Za-z0-9_.-], dot-separated",
        ));
    }
    let mut global_tags = Vec::new();
    for (name, value) in &raw.global_tags {
        let key = format!("statsd.global_tags.{name}");
        if !tag_key_ok(name) {
            return Err(key_error(path, key, "a tag key is 1-32 of [a-z0-9_]"));
        }
        if !valid_tag_value(value) {
            return Err(key_error(path, key, "a tag value is 1-64 of [a-z0-9_.-]"));
        }
        global_tags.push((name.clone(), value.clone()));
    }
    let (key, address) = match (&overrides.statsd, &raw.address) {
        (Some(flag), _) => ("--statsd", flag.as_str()),
        (None, Some(file)) => ("statsd.address", file.as_str()),
        (None, None) => return Ok(None),
    };
    // Resolved once, here, at start-up: nothing is looked up while serving.
    let address = std::net::ToSocketAddrs::to_socket_addrs(address)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .filter(|a| a.port() != 0)
        .ok_or_else(|| {
            key_error(
                path,
                key,
                "expected HOST:PORT of a StatsD daemon, such as 127.0.0.1:8125",
            )
        })?;
    Ok(Some(StatsdSettings {
        address,
        prefix,
        tags: raw.tags.unwrap_or(true),
        global_tags,
    }))
}

fn tag_key_ok(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 32
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn validate_attribution(raw: &[String], path: &Path) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let key = format!("statsd.attribution[{i}]");
        if !tag_key_ok(name) {
            return Err(key_error(path, key, "a tag key is 1-32 of [a-z0-9_]"));
        }
        if RESERVED_TAG_KEYS.contains(&name.as_str()) {
            return Err(key_error(path, key, "this tag key is Lethe's own"));
        }
        if out.contains(name) {
            return Err(key_error(path, key, "listed twice"));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// Whether `name` can be a model tag value: 1-128 of `[A-Za-z0-9_.:/@-]`.
pub fn model_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/@-".contains(&b))
}

fn validate_prices(
    raw: &BTreeMap<String, RawPrice>,
    path: &Path,
) -> Result<Vec<(String, Price)>, ConfigError> {
    let mut out = Vec::new();
    for (name, price) in raw {
        if !model_name_ok(name) {
            return Err(key_error(
                path,
                "prices",
                "a model name is 1-128 of [A-Za-z0-9_.:/@-]",
            ));
        }
        for (field, value) in [("input", price.input), ("output", price.output)] {
            if !value.is_finite() || !(0.0..=1_000_000.0).contains(&value) {
                return Err(key_error(
                    path,
                    format!("prices.{name}.{field}"),
                    "expected USD per million tokens, 0 to 1000000",
                ));
            }
        }
        out.push((
            name.clone(),
            Price {
                input: price.input,
                output: price.output,
            },
        ));
    }
    Ok(out)
}

fn validate_server(
    raw: &RawServer,
    path: &Path,
    overrides: &Overrides,
) -> Result<Server, ConfigError> {
    let (listen_key, listen) = match (&overrides.listen, &raw.listen) {
        (Some(flag), _) => ("--listen", flag.as_str()),
        (None, Some(file)) => ("server.listen", file.as_str()),
        (None, None) => ("server.listen", DEFAULT_LISTEN),
    };
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| key_error(path, listen_key, "expected IP:PORT, such as 127.0.0.1:8080"))?;
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(key_error(
                path,
                "server.tls_key",
                "missing (tls_cert is set)",
            ))
        }
        (None, Some(_)) => {
            return Err(key_error(
                path,
                "server.tls_cert",
                "missing (tls_key is set)",
            ))
        }
    };
    if tls.is_none() && !listen.ip().is_loopback() && raw.allow_plaintext != Some(true) {
        return Err(key_error(
            path,
            listen_key,
            "plain HTTP is served on loopback only; set server.tls_cert and server.tls_key, or server.allow_plaintext = true",
        ));
    }
    Ok(Server {
        listen,
        tls,
        allow_plaintext: raw.allow_plaintext == Some(true),
        max_body_bytes: size(
            path,
            "server.max_body_bytes",
            raw.max_body_bytes,
            32 << 20,
            1 << 30,
        )?,
        max_response_bytes: size(
            path,
            "server.max_response_bytes",
            raw.max_response_bytes,
            64 << 20,
            1 << 30,
        )?,
        max_event_bytes: size(
            path,
            "server.max_event_bytes",
            raw.max_event_bytes,
            4 << 20,
            1 << 30,
        )?,
        max_connections: size(
            path,
            "server.max_connections",
            raw.max_connections,
            4096,
            1 << 20,
        )?,
        header_timeout: millis(
            path,
            "server.header_timeout_ms",
            raw.header_timeout_ms,
            10_000,
        )?,
        body_timeout: millis(path, "server.body_timeout_ms", raw.body_timeout_ms, 10_000)?,
        idle_timeout: millis(path, "server.idle_timeout_ms", raw.idle_timeout_ms, 90_000)?,
    })
}

fn validate_policy(raw: &RawPolicy, path: &Path) -> Result<Floor, ConfigError> {
    let mut policy = Policy::default();
    if let Some(types) = &raw.types {
        let mut kinds = KindSet::EMPTY;
        for (i, name) in types.iter().enumerate() {
            if name == "all" {
                kinds = KindSet::ALL;
                continue;
            }
            let kind = Kind::from_name(name).ok_or_else(|| {
                key_error(
                    path,
                    format!("policy.types[{i}]"),
                    "unknown type (expected credit_card, ssn, email, phone, ip_address, iban, api_key, jwt, private_key, dictionary or all)",
                )
            })?;
            kinds.insert(kind);
        }
        policy = policy.with_kinds(kinds);
    }
    let bad_style = "expected mask, label or placeholder";
    if let Some(style) = &raw.style {
        let style =
            Style::parse(style).ok_or_else(|| key_error(path, "policy.style", bad_style))?;
        policy = policy.with_style(style);
    }
    if let Some(styles) = &raw.styles {
        for (name, value) in styles {
            let key = format!("policy.styles.{name}");
            let kind = Kind::from_name(name)
                .ok_or_else(|| key_error(path, key.as_str(), "unknown type"))?;
            let style = value
                .as_str()
                .and_then(Style::parse)
                .ok_or_else(|| key_error(path, key.as_str(), bad_style))?;
            policy = policy.with_kind_style(kind, style);
        }
    }
    let mut terms: Vec<String> = raw.terms.clone().unwrap_or_default();
    if let Some(file) = &raw.dictionary {
        let text = std::fs::read_to_string(file).map_err(|_| {
            key_error(
                path,
                "policy.dictionary",
                format!("cannot read {}", file.display()),
            )
        })?;
        terms.extend(
            text.lines()
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.starts_with('#'))
                .map(str::to_owned),
        );
    }
    policy = policy.with_terms(terms);
    // Compile once now so a bad term is reported at start-up, not on the first request.
    Scrubber::new(&policy).map_err(|e| {
        let key = match e {
            PolicyError::BadTerm { .. } | PolicyError::TermIsLabel => "policy.terms",
            PolicyError::DictionaryTooLarge => "policy.dictionary",
            PolicyError::UnknownKind | PolicyError::Build => "policy",
        };
        key_error(path, key, e.to_string())
    })?;
    Ok(Floor {
        policy,
        allow_client_lower: raw.allow_client_lower.unwrap_or(false),
    })
}

fn validate_client_keys(raw: &RawAuth, path: &Path) -> Result<Vec<KeyHash>, ConfigError> {
    let mut out = Vec::new();
    for (i, hex) in raw.client_key_sha256.iter().flatten().enumerate() {
        let hash = decode_hex32(hex.trim()).ok_or_else(|| {
            key_error(
                path,
                format!("auth.client_key_sha256[{i}]"),
                "expected 64 hex digits (the SHA-256 of the key)",
            )
        })?;
        out.push(KeyHash(hash));
    }
    Ok(out)
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn default_routes() -> Vec<RawRoute> {
    let route = |name: &str, format: &str, url: &str| RawRoute {
        name: name.to_owned(),
        format: format.to_owned(),
        base_url: url.to_owned(),
        models: Vec::new(),
        key: RawKey::Word("passthrough".to_owned()),
        fallback: Vec::new(),
        hipaa_baa: false,
    };
    vec![
        route("openai", "openai", "https://api.openai.com"),
        route("anthropic", "anthropic", "https://api.anthropic.com"),
    ]
}

fn validate_routes(
    raw: Option<Vec<RawRoute>>,
    path: &Path,
    overrides: &Overrides,
    gateway_keys: bool,
) -> Result<Vec<Route>, ConfigError> {
    let raw = raw.unwrap_or_else(default_routes);
    if raw.is_empty() {
        return Err(key_error(path, "route", "at least one route is needed"));
    }
    let mut names = HashSet::new();
    let mut routes = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = |field: &str| format!("route[{i}].{field}");
        if r.name.is_empty()
            || r.name.len() > 64
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(key_error(
                path,
                at("name"),
                "expected 1-64 of [A-Za-z0-9_.-]",
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(key_error(path, at("name"), "two routes have this name"));
        }
        let format = match r.format.as_str() {
            "openai" => Format::OpenAi,
            "anthropic" => Format::Anthropic,
            _ => {
                return Err(key_error(
                    path,
                    at("format"),
                    "expected openai or anthropic",
                ))
            }
        };
        let (url_key, url) = match format {
            Format::OpenAi => match &overrides.openai_upstream {
                Some(u) => ("--openai-upstream".to_owned(), u.as_str()),
                None => (at("base_url"), r.base_url.as_str()),
            },
            Format::Anthropic => match &overrides.anthropic_upstream {
                Some(u) => ("--anthropic-upstream".to_owned(), u.as_str()),
                None => (at("base_url"), r.base_url.as_str()),
            },
        };
        let base_url = parse_base_url(url).ok_or_else(|| {
            key_error(
                path,
                url_key,
                "expected an http:// or https:// origin with an optional path, no query",
            )
        })?;
        for (j, glob) in r.models.iter().enumerate() {
            if glob.is_empty() || glob.len() > 128 {
                return Err(key_error(
                    path,
                    format!("route[{i}].models[{j}]"),
                    "expected 1-128 characters",
                ));
            }
        }
        let key = match &r.key {
            RawKey::Word(w) if w == "passthrough" => {
                if gateway_keys {
                    return Err(key_error(
                        path,
                        at("key"),
                        "passthrough cannot be used with auth.client_key_sha256: clients send gateway keys, not provider keys",
                    ));
                }
                ProviderKey::Passthrough
            }
            RawKey::Word(_) => {
                return Err(key_error(
                    path,
                    at("key"),
                    "expected \"passthrough\" or a table with `env` or `credential` (keys are never written in the config)",
                ))
            }
            RawKey::Source(source) => ProviderKey::Secret(load_key(source, path, &at("key"))?),
        };
        routes.push(Route {
            name: r.name.clone(),
            format,
            base_url,
            models: r.models.clone(),
            key,
            fallback: Vec::new(),
            hipaa_baa: r.hipaa_baa,
        });
    }
    for (i, r) in raw.iter().enumerate() {
        for (j, name) in r.fallback.iter().enumerate() {
            let key = format!("route[{i}].fallback[{j}]");
            let target = raw
                .iter()
                .position(|t| &t.name == name)
                .ok_or_else(|| key_error(path, key.as_str(), "no route has this name"))?;
            if target == i {
                return Err(key_error(path, key, "a route cannot fall back to itself"));
            }
            if routes[target].format != routes[i].format {
                return Err(key_error(
                    path,
                    key,
                    "a fallback must speak the same format",
                ));
            }
            routes[i].fallback.push(target);
        }
    }
    Ok(routes)
}

fn load_key(source: &RawKeySource, path: &Path, key: &str) -> Result<SecretString, ConfigError> {
    match (&source.env, &source.credential) {
        (Some(var), None) => match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => {
                Ok(SecretString::from(value.trim().to_owned()))
            }
            _ => Err(key_error(
                path,
                format!("{key}.env"),
                format!("environment variable {var} is not set or empty"),
            )),
        },
        (None, Some(name)) => {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(key_error(
                    path,
                    format!("{key}.credential"),
                    "expected a credential name, not a path",
                ));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                key_error(
                    path,
                    format!("{key}.credential"),
                    "CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)",
                )
            })?;
            let file = Path::new(&dir).join(name);
            let value = std::fs::read_to_string(&file)
                .map_err(|_| ConfigError::Read { path: file.clone() })?;
            let value = value.trim();
            if value.is_empty() {
                return Err(key_error(
                    path,
                    format!("{key}.credential"),
                    "the credential is empty",
                ));
            }
            Ok(SecretString::from(value.to_owned()))
        }
        _ => Err(key_error(
            path,
            key,
            "expected exactly one of `env` or `credential`",
        )),
    }
}

fn load_ca(file: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| ConfigError::Read {
            path: file.to_owned(),
        })?;
    if certs.is_empty() {
        return Err(ConfigError::Read {
            path: file.to_owned(),
        });
    }
    Ok(certs)
}

fn parse_base_url(url: &str) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme()?;
    if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || uri.query().is_some() {
        return None;
    }
    Some(uri)
}

/// `*` matches any run of characters, `?` one character; everything else is literal.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t) = (glob.as_bytes(), text.as_bytes());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match g.get(gi) {
            Some(b'*') => {
                star = Some((gi, ti));
                gi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                gi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    gi = sg + 1;
                    ti = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let path = Path::new("test.toml");
        validate(parse(text, path)?, path, &Overrides::default())
    }

    #[test]
    fn default_config_listens_on_loopback_with_two_passthrough_routes() {
        let c = Config::default_config(&Overrides::default()).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].base_url.to_string(), "https://api.openai.com/");
        assert_eq!(c.routes[1].format, Format::Anthropic);
        assert!(matches!(c.routes[1].key, ProviderKey::Passthrough));
    }

    #[test]
    fn errors_name_the_key_never_the_value() {
        let e = load("[server]\nlisten = \"secret-customer-name\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
        assert!(!e.contains("secret-customer-name"), "{e}");
        let e = load("[server]\nmax_body_bytes = \"Jane Doe\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.max_body_bytes") && !e.contains("Jane"),
            "{e}"
        );
        let e = load("[policy]\nterms = [\"ok\", \"-Jane Doe\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.terms") && !e.contains("Jane"), "{e}");
        let e = load("[server]\nlisten_addr = 1\n").unwrap_err().to_string();
        assert!(e.contains("unknown key `listen_addr`"), "{e}");
        let e = load("[server\nlisten = 1").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn routes_validate_keys_fallbacks_and_urls() {
        let route = |extra: &str| {
            format!("[[route]]\nname = \"a\"\nformat = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\nkey = \"passthrough\"\n{extra}")
        };
        assert!(load(&route("")).is_ok());
        let e = load(&route("fallback = [\"a\"]")).unwrap_err().to_string();
        assert!(e.contains("route[0].fallback[0]"), "{e}");
        let e = load(&route("fallback = [\"b\"]")).unwrap_err().to_string();
        assert!(e.contains("no route has this name"), "{e}");
        let e = load(&route("").replace("passthrough", "sk-live-123"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("route[0].key") && !e.contains("sk-live"), "{e}");
        let e = load(&route("").replace("http://127.0.0.1:9", "ftp://x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("route[0].base_url"), "{e}");
        let e = load("[[route]]\nname = \"a\"\nformat = \"openai\"\nbase_url = \"http://x\"\nkey = { env = \"LETHE_TEST_SURELY_UNSET\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("route[0].key.env") && e.contains("LETHE_TEST_SURELY_UNSET"),
            "{e}"
        );
        let e = load(&format!(
            "[auth]\nclient_key_sha256 = [\"{}\"]\n{}",
            "ab".repeat(32),
            route("")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("passthrough cannot be used"), "{e}");
    }

    #[test]
    fn plaintext_off_loopback_needs_consent() {
        let e = load("[server]\nlisten = \"0.0.0.0:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        assert!(load("[server]\nlisten = \"0.0.0.0:8080\"\nallow_plaintext = true\n").is_ok());
    }

    #[test]
    fn sandbox_defaults_to_kill_and_names_a_bad_action() {
        let c = load("").unwrap();
        assert_eq!(c.sandbox, Sandbox::default());
        assert_eq!(c.sandbox.seccomp_action, SeccompAction::Kill);
        let c = load("[sandbox]\nlock_memory = true\nseccomp_action = \"log\"\n").unwrap();
        assert!(c.sandbox.lock_memory);
        assert_eq!(c.sandbox.seccomp_action, SeccompAction::Log);
        let e = load("[sandbox]\nseccomp_action = \"trap\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sandbox.seccomp_action"), "{e}");
        let e = load("[sandbox]\nenabled = false\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `enabled`"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_match("*", ""));
        assert!(glob_match("claude-?-*", "claude-3-opus"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(!glob_match("o*", "gpt-4o"));
        assert!(glob_match("*mini", "gpt-4o-mini"));
    }
}
