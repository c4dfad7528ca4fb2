//! `cityd connect gitlab` against the GitLab double: the project's Mattermost integration, drift,
//! the local-network refusal and the plugin's OAuth application.

use super::*;
use cityd_testcontainers::gitlab::{GitlabDouble, GitlabOptions};

struct GitlabLab {
    s: Scratch,
    city: PathBuf,
    double: GitlabDouble,
    vault: Vault,
}

fn gitlab_lab(opts: GitlabOptions, admin: bool, hook: &str) -> GitlabLab {
    let s = Scratch::new();
    let vault = vault(&s);
    store(&vault, "webhook-code-reviews", hook);
    store(&vault, "gitlab-api-token", &opts.token);
    if admin {
        store(&vault, "gitlab-admin-token", &opts.admin_token);
    }
    let double = GitlabDouble::start(opts).unwrap();
    let base = double.base_url();
    let city = city(&s, move |t| {
        let g = section(t, "gitlab");
        g.insert("url".into(), base.into());
        g.insert("project".into(), "articles/http-client".into());
    });
    GitlabLab {
        s,
        city,
        double,
        vault,
    }
}

#[test]
fn gitlab_from_scratch_sets_the_integration_reads_it_back_and_a_rerun_changes_nothing() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("read back"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(REVIEWS_HOOK),
        "the webhook URL is a secret"
    );
    let i = lab.double.integration(42).expect("the integration is set");
    assert!(i.active);
    assert_eq!(i.webhook, REVIEWS_HOOK);
    for (event, on) in [
        ("push_events", true),
        ("merge_requests_events", true),
        ("pipeline_events", true),
        ("tag_push_events", true),
        ("issues_events", false),
        ("note_events", false),
        ("wiki_page_events", false),
    ] {
        assert_eq!(i.events.get(event), Some(&on), "{event}");
    }
    assert_eq!(i.properties["branches_to_be_notified"], "all");
    assert_eq!(i.properties["notify_only_broken_pipelines"], false);
    assert_eq!(i.properties["channel"], "code-reviews");
    // The project was found by its URL-encoded full path.
    let requests = lab.double.requests();
    assert_eq!(requests[0].path, "/api/v4/projects/articles%2Fhttp-client");
    assert_eq!(lab.double.mutating_requests(), 1);
    assert!(run.stdout.contains("OAuth application"), "{}", run.stdout);
    assert!(
        run.stdout.contains("skipped"),
        "no admin token: {}",
        run.stdout
    );

    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("gitlab: no changes"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), 1);
}

#[test]
fn gitlab_repairs_drift_and_pushes_a_new_webhook_url() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    lab.double.edit_integration(42, |i| {
        i.events.insert("pipeline_events".into(), false);
    });
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(
        run.stdout.contains("differs: pipeline_events"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.mutating_requests(), 2);
    assert!(lab.double.integration(42).unwrap().events["pipeline_events"]);

    // GitLab never shows the webhook; the fingerprint record notices the vault's new URL.
    let new_hook = "https://mattermost.cicd.local:8065/hooks/n3w4h5o6o7k8u9r0l1a2b3c4d5";
    store(&lab.vault, "webhook-code-reviews", new_hook);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("differs: webhook"), "{}", run.stdout);
    assert_eq!(lab.double.integration(42).unwrap().webhook, new_hook);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert_eq!(lab.double.mutating_requests(), 3);
}

#[test]
fn gitlab_refusing_a_private_webhook_address_names_the_admin_setting() {
    let private_hook = "https://192.168.1.20:8065/hooks/p7r1v4t3e8h2o6o9k5x0y3z1w4";
    let lab = gitlab_lab(GitlabOptions::default(), false, private_hook);
    let run = connect(&lab.s, &lab.city, &["gitlab"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("local network are not allowed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Allow requests to the local network from webhooks and integrations"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("allow_local_requests_from_web_hooks_and_services")
    );
    assert!(
        !run.stderr.contains(private_hook),
        "the webhook URL is a secret"
    );
    assert!(lab.double.integration(42).is_none());

    lab.double.set_allow_local_requests(true);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert_eq!(lab.double.integration(42).unwrap().webhook, private_hook);
}

#[test]
fn gitlab_oauth_application_is_created_once_with_the_site_url_redirect() {
    let lab = gitlab_lab(GitlabOptions::default(), true, REVIEWS_HOOK);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("cityd wire"), "{}", run.stdout);
    let apps = lab.double.applications();
    assert_eq!(apps.len(), 1);
    assert_eq!(
        apps[0].redirect_uri,
        "https://mattermost.cicd.local:8065/plugins/com.github.manland.mattermost-plugin-gitlab/oauth/complete"
    );
    assert_eq!(apps[0].scopes, "api read_user");
    assert!(
        !apps[0].redirect_uri.contains('\n'),
        "one redirect URI, never the LAN-IP one"
    );
    let id = lab.vault.read("gitlab-oauth-client-id").unwrap().unwrap();
    let secret = lab
        .vault
        .read("gitlab-oauth-client-secret")
        .unwrap()
        .unwrap();
    assert_eq!(id.expose(), apps[0].application_id);
    assert_eq!(secret.expose(), apps[0].secret);
    assert!(!run.stdout.contains(&apps[0].secret));
    assert_eq!(
        mode_of(&lab.vault.path_of("gitlab-oauth-client-secret")),
        0o600
    );
    let mutating = lab.double.mutating_requests();

    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("gitlab: no changes"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), mutating);
    assert_eq!(lab.double.applications().len(), 1);

    // A lost secret cannot be read back from GitLab: the application is re-created.
    std::fs::remove_file(lab.vault.path_of("gitlab-oauth-client-secret")).unwrap();
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("re-created"), "{}", run.stdout);
    let apps = lab.double.applications();
    assert_eq!(apps.len(), 1);
    assert_eq!(lab.double.mutating_requests(), mutating + 2);
    let secret = lab
        .vault
        .read("gitlab-oauth-client-secret")
        .unwrap()
        .unwrap();
    assert_eq!(secret.expose(), apps[0].secret);
}

#[test]
fn gitlab_dry_run_changes_nothing() {
    let lab = gitlab_lab(GitlabOptions::default(), true, REVIEWS_HOOK);
    let run = ok(connect(
        &lab.s,
        &lab.city,
        &["gitlab", "--dry-run", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["changed"], true);
    assert_eq!(report["requests"]["mutating"], 0);
    assert_eq!(lab.double.mutating_requests(), 0);
    assert!(lab.double.integration(42).is_none());
    assert!(lab.double.applications().is_empty());
    assert!(lab.vault.read("gitlab-oauth-client-id").unwrap().is_none());
    assert!(!lab.s.state().join("integrations").exists());
}

#[test]
fn gitlab_unknown_project_and_bad_token_are_explained() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    let other = city(&lab.s, |t| {
        let g = section(t, "gitlab");
        g.insert("url".into(), lab.double.base_url().into());
        g.insert("project".into(), "articles/missing".into());
    });
    let run = connect(&lab.s, &other, &["gitlab"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no project articles/missing"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("%2F"), "{}", run.stderr);

    store(&lab.vault, "gitlab-api-token", "glpat-wrong");
    let run = connect(&lab.s, &lab.city, &["gitlab"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refused the token"), "{}", run.stderr);
    assert!(!run.stderr.contains("glpat-wrong"), "{}", run.stderr);
}
