//! The registry is the one list of platforms: every registered platform has its docs page, its
//! row in the docs index and the README, its fixtures, its test file and a full lifecycle in
//! the testkit; the docs index lists nothing else.
use keygate_billing::{PROVIDERS, names, testkit};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `provider` column of the table in `docs/platforms/README.md`, in order.
fn index_providers() -> Vec<String> {
    read(repo().join("docs/platforms/README.md"))
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(2).map(str::trim).map(str::to_string))
        .filter(|cell| cell.starts_with('`') && cell.ends_with('`'))
        .map(|cell| cell.trim_matches('`').to_string())
        .filter(|name| name != "provider")
        .collect()
}

#[test]
fn every_registered_platform_is_complete() {
    let readme = read(repo().join("README.md"));
    let index = read(repo().join("docs/platforms/README.md"));
    let adding = repo().join("docs/platforms/ADDING.md");
    assert!(adding.exists(), "docs/platforms/ADDING.md");
    for provider in PROVIDERS {
        let name = provider.name();
        let page = read(repo().join(format!("docs/platforms/{name}.md")));
        assert!(
            page.contains(&format!("keygate simulate {name}")),
            "docs/platforms/{name}.md: say how to try it with `keygate simulate {name}`"
        );
        assert!(
            index.contains(&format!("[{name}.md]({name}.md)")),
            "docs/platforms/README.md: a row linking {name}.md"
        );
        assert!(readme.contains(&format!("`{name}`")), "README.md: `{name}`");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        // JSON, form, XML or text: fixtures are the platform's bytes as it sends them.
        let count = std::fs::read_dir(&fixtures)
            .unwrap_or_else(|e| panic!("{}: {e}", fixtures.display()))
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count();
        assert!(count > 0, "tests/fixtures/{name}/: no fixture");
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.rs"));
        assert!(tests.exists(), "tests/{name}.rs");
        let kit = testkit::kit(*provider);
        let steps = kit.steps(1_800_000_000, 1_800_000_000);
        let orders = kit.order_steps(1_800_000_000);
        assert!(
            steps.is_some() || orders.is_some(),
            "{name}: the testkit plays neither a subscription lifecycle nor an order"
        );
        if let Some(steps) = steps {
            assert!(
                !steps.created.is_empty(),
                "{name}: the testkit lifecycle has no `created`"
            );
        }
        // `refunded` may be empty where the platform sends no refund notification
        // (MyCommerce); its docs page says so.
        if let Some(orders) = orders {
            assert!(
                !orders.paid.is_empty(),
                "{name}: the testkit order has no `paid`"
            );
        }
    }
}

#[test]
fn the_docs_index_lists_exactly_the_registry() {
    assert_eq!(index_providers(), names());
}
