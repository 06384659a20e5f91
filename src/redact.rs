//! Keeps secrets in RPC URLs (API keys in paths, passwords, query values) out of every message
//! ethetl prints: [`redact_url`] makes the displayable form of an endpoint, and
//! [`Redactor::sanitize`] scrubs any text (such as an HTTP library's error message) that may
//! embed the raw URL or pieces of it.

/// The replacement shown instead of a secret.
pub const MASK: &str = "***";

/// Returns `url` with everything that could be a credential replaced by `***`:
/// the password of `user:password@` (or a lone `user@`, which some providers use for keys),
/// every path segment that is not a short plain word (`/v2/<key>` → `/v2/***`), every query
/// value (`?apikey=X` → `?apikey=***`) and any fragment.
///
/// Works on anything, including strings that are not valid URLs.
///
/// ```
/// use ethetl::redact::redact_url;
/// assert_eq!(
///     redact_url("https://eth-mainnet.g.alchemy.com/v2/AbC123xYz"),
///     "https://eth-mainnet.g.alchemy.com/v2/***"
/// );
/// assert_eq!(redact_url("http://node:8545/?apikey=s3cret"), "http://node:8545/?apikey=***");
/// ```
pub fn redact_url(url: &str) -> String {
    Redactor::new(url).redacted
}

/// A URL's redacted form together with the secret pieces that were hidden, for scrubbing
/// arbitrary messages that may quote the URL.
#[derive(Clone, Debug)]
pub struct Redactor {
    raw: String,
    redacted: String,
    /// Hidden pieces, longest first (so a secret that contains another is replaced whole).
    secrets: Vec<String>,
}

/// Secrets shorter than this are not searched for inside messages: replacing one- to
/// three-character strings everywhere would mangle numbers and words, and such short values
/// are not credentials. They are still hidden in the redacted URL itself.
const MIN_SCRUB_LEN: usize = 4;

impl Redactor {
    pub fn new(raw: &str) -> Redactor {
        let mut secrets = Vec::new();
        let mut out = String::with_capacity(raw.len());

        // scheme
        let rest = match raw.find("://") {
            Some(i) => {
                out.push_str(&raw[..i + 3]);
                &raw[i + 3..]
            }
            None => raw,
        };
        // fragment (never needed to reach a node; hide it whole)
        let (rest, fragment) = match rest.find('#') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // query
        let (rest, query) = match rest.find('?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // authority / path
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let host = match authority.rfind('@') {
            Some(i) => {
                let userinfo = &authority[..i];
                match userinfo.find(':') {
                    Some(c) => {
                        out.push_str(&userinfo[..c]);
                        out.push(':');
                        out.push_str(MASK);
                        secrets.push(userinfo[c + 1..].to_string());
                    }
                    None => {
                        out.push_str(MASK);
                        secrets.push(userinfo.to_string());
                    }
                }
                out.push('@');
                &authority[i + 1..]
            }
            None => authority,
        };
        out.push_str(host);

        if let Some(path) = path {
            for seg in path[1..].split('/') {
                out.push('/');
                if is_plain_segment(seg) {
                    out.push_str(seg);
                } else {
                    out.push_str(MASK);
                    secrets.push(seg.to_string());
                }
            }
        }
        if let Some(query) = query {
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.find('=') {
                    Some(e) => {
                        out.push_str(&pair[..e]);
                        out.push('=');
                        out.push_str(MASK);
                        secrets.push(pair[e + 1..].to_string());
                    }
                    // A bare `?KEY` may itself be the credential.
                    None if pair.is_empty() => {}
                    None => {
                        out.push_str(MASK);
                        secrets.push(pair.to_string());
                    }
                }
            }
        }
        if let Some(fragment) = fragment {
            out.push('#');
            if !fragment.is_empty() {
                out.push_str(MASK);
                secrets.push(fragment.to_string());
            }
        }

        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            raw: raw.to_string(),
            redacted: out,
            secrets,
        }
    }

    /// The displayable form of the URL.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL as given (never print it).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Replaces every occurrence of the raw URL (by its redacted form) and of each hidden
    /// piece (by `***`) in `message`.
    pub fn sanitize(&self, message: &str) -> String {
        let mut s = if self.raw.is_empty() {
            message.to_string()
        } else {
            message.replace(&self.raw, &self.redacted)
        };
        for secret in &self.secrets {
            if secret.len() >= MIN_SCRUB_LEN && s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), MASK);
            }
            // Libraries may print the percent-decoded or re-encoded form; cover the common
            // case of a decoded value too.
            let decoded = percent_decode(secret);
            if decoded.len() >= MIN_SCRUB_LEN && decoded != *secret && s.contains(&decoded) {
                s = s.replace(&decoded, MASK);
            }
        }
        s
    }
}

/// Words that providers put in RPC paths and that are never credentials: networks, chains and
/// the usual route names. A path segment is shown only if it is empty, a version tag (`v2`), a
/// short number (a chain id), or made of these words joined by `-`, `_` or `.`
/// (`arbitrum-sepolia`); anything else is treated as a key, even an all-lowercase word.
pub const PUBLIC_PATH_WORDS: &[&str] = &[
    "api",
    "rpc",
    "jsonrpc",
    "json-rpc",
    "http",
    "https",
    "ws",
    "wss",
    "ext",
    "bc",
    "evm",
    "public",
    "node",
    "nodes",
    "archive",
    "full",
    "trace",
    "debug",
    "eth",
    "ethereum",
    "mainnet",
    "testnet",
    "devnet",
    "sepolia",
    "holesky",
    "hoodi",
    "goerli",
    "ropsten",
    "rinkeby",
    "kovan",
    "one",
    "nova",
    "arbitrum",
    "arb",
    "optimism",
    "op",
    "base",
    "polygon",
    "matic",
    "amoy",
    "mumbai",
    "zkevm",
    "bsc",
    "bnb",
    "avalanche",
    "avax",
    "c",
    "gnosis",
    "xdai",
    "chiado",
    "linea",
    "scroll",
    "zksync",
    "era",
    "blast",
    "mantle",
    "celo",
    "fantom",
    "ftm",
    "opbnb",
    "zora",
    "mode",
    "metis",
    "moonbeam",
    "moonriver",
    "cronos",
    "kava",
    "aurora",
    "harmony",
    "klaytn",
    "kaia",
    "starknet",
    "taiko",
    "unichain",
    "worldchain",
    "ink",
    "soneium",
    "berachain",
    "sonic",
    "abstract",
    "local",
    "localhost",
    "dev",
    "test",
];

/// Whether a path segment is harmless to show (see [`PUBLIC_PATH_WORDS`]).
fn is_plain_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return true;
    }
    if b.len() <= 4 && b[0] == b'v' && b.len() >= 2 && b[1..].iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() <= 6 && b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    seg.split(['-', '_', '.']).all(|w| {
        PUBLIC_PATH_WORDS.contains(&w)
            || (!w.is_empty() && w.len() <= 6 && w.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// Whether the value of a setting is harmless to repeat in an error: short, and only
/// lowercase letters, digits and `.-_` (`x`, `1.5`, `callz`). Anything else may be a key
/// pasted into the wrong place and is shown as `***`.
pub fn is_plain_value(value: &str) -> bool {
    value.len() <= 12
        && value.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_')
        })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 3) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_path_keys() {
        assert_eq!(
            redact_url("https://eth-mainnet.g.alchemy.com/v2/KEY"),
            "https://eth-mainnet.g.alchemy.com/v2/***"
        );
        assert_eq!(
            redact_url("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef"),
            "https://mainnet.infura.io/v3/***"
        );
        assert_eq!(
            redact_url("https://rpc.ankr.com/eth/9f3a1b2c"),
            "https://rpc.ankr.com/eth/***"
        );
        assert_eq!(
            redact_url("https://x.quiknode.pro/Ab12Cd34/"),
            "https://x.quiknode.pro/***/"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8545/v2/SECRETKEY?apikey=SECRET2"),
            "http://127.0.0.1:8545/v2/***?apikey=***"
        );
    }

    #[test]
    fn keeps_plain_urls() {
        for u in [
            "http://127.0.0.1:8545",
            "http://127.0.0.1:8545/",
            "http://localhost:8545/mainnet",
            "https://rpc.example.org/arbitrum-sepolia",
            "http://[::1]:8545/v1/1",
        ] {
            assert_eq!(redact_url(u), u);
        }
    }

    #[test]
    fn path_words_are_secret_unless_known_public() {
        for (url, shown) in [
            ("http://h/v1/secretkeylower", "http://h/v1/***"),
            ("http://h/rpc/abcdef", "http://h/rpc/***"),
            ("http://h/base-sepolia/v2/k", "http://h/base-sepolia/v2/***"),
            ("http://h/eth/mainnet/42161", "http://h/eth/mainnet/42161"),
            ("http://h/arbitrum_one.rpc", "http://h/arbitrum_one.rpc"),
            ("http://h/mainnetx", "http://h/***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert!(is_plain_value("1.5") && is_plain_value("callz"));
        assert!(!is_plain_value("SECRETKEY9") && !is_plain_value("a3f9c2e1d4b5a6f7"));
    }

    #[test]
    fn hides_userinfo_query_and_fragment() {
        assert_eq!(
            redact_url("https://alice:hunter22@node.example/rpc"),
            "https://alice:***@node.example/rpc"
        );
        assert_eq!(
            redact_url("https://tokenonly@node.example"),
            "https://***@node.example"
        );
        assert_eq!(
            redact_url("http://h/?apikey=abc&x=1&flag"),
            "http://h/?apikey=***&x=***&***"
        );
        assert_eq!(redact_url("http://h/#frag"), "http://h/#***");
    }

    #[test]
    fn not_a_url_is_still_redacted() {
        let r = redact_url("not a url?key=supersecret");
        assert!(!r.contains("supersecret"), "{r}");
    }

    #[test]
    fn sanitize_scrubs_raw_url_and_pieces() {
        let raw = "http://user:passw0rd@127.0.0.1:9/v2/SECRETKEY?apikey=SECRET2";
        let r = Redactor::new(raw);
        let msg = format!(
            "bad uri: {raw}; also saw /v2/SECRETKEY and apikey=SECRET2 and passw0rd and SECRET%32"
        );
        let clean = r.sanitize(&msg);
        for secret in ["SECRETKEY", "SECRET2", "passw0rd"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert!(
            clean.contains("http://user:***@127.0.0.1:9/v2/***?apikey=***"),
            "{clean}"
        );
    }

    #[test]
    fn sanitize_decoded_form() {
        let r = Redactor::new("http://h/?k=ab%2Fcd%3D");
        assert_eq!(r.sanitize("value ab/cd= here"), "value *** here");
    }
}
