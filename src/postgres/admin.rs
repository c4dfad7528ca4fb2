//! The administrator's connection as `--admin-url` names it: `postgres://USER@HOST[:PORT][/DATABASE]`,
//! with the password from elsewhere (a URL carrying one is refused and never echoed).

use super::PgError;
use crate::secrets::Secret;

/// How the administrator reaches the server. The password never comes from the URL.
#[derive(Debug, Clone)]
pub struct Admin {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret>,
}

impl Admin {
    /// Parses `postgres://USER@HOST[:PORT][/DATABASE]`. A URL carrying a password is refused:
    /// command lines are readable by every local user.
    pub fn from_url(url: &str, password: Option<Secret>) -> Result<Self, PgError> {
        let bad = |rule| PgError::BadUrl {
            url: redact_url(url),
            rule,
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres://"))?;
        if rest.contains('?') {
            return Err(bad(
                "query parameters are not accepted; TLS is chosen with --db-tls",
            ));
        }
        let (authority, dbname) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (user, hostport),
            None => ("postgres", authority),
        };
        if user.contains(':') {
            return Err(bad(
                "it carries a password; put the password in --admin-password-file or PGPASSWORD",
            ));
        }
        if user.is_empty() {
            return Err(bad("the user name is empty"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host needs a closing ]"))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1-65535"))?,
        };
        Ok(Self {
            host,
            port,
            user: user.to_string(),
            dbname: if dbname.is_empty() {
                "postgres".into()
            } else {
                dbname.to_string()
            },
            password,
        })
    }

    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Never echo a password that someone put in a URL anyway.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user = url[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_parses_and_refuses_passwords() {
        let a = Admin::from_url("postgres://admin@db.lan:5433/tenants", None).unwrap();
        assert_eq!(
            (a.user.as_str(), a.host.as_str(), a.port, a.dbname.as_str()),
            ("admin", "db.lan", 5433, "tenants")
        );
        let d = Admin::from_url("postgresql://127.0.0.1", None).unwrap();
        assert_eq!(
            (d.user.as_str(), d.port, d.dbname.as_str()),
            ("postgres", 5432, "postgres")
        );
        let v6 = Admin::from_url("postgres://u@[::1]:6000/x", None).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6000));
        assert_eq!(v6.server(), "[::1]:6000");
        let err = Admin::from_url("postgres://admin:hunter2@db:5432/x", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        for bad in [
            "mysql://x",
            "postgres://u@h:0/x",
            "postgres://u@:5432",
            "postgres://h/x?sslmode=require",
        ] {
            assert!(Admin::from_url(bad, None).is_err(), "{bad} was accepted");
        }
    }
}
