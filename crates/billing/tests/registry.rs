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
        let count = std::fs::read_dir(&fixtures)
            .unwrap_or_else(|e| panic!("{}: {e}", fixtures.display()))
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    let file = e.file_name().to_string_lossy().into_owned();
                    // JSON, or the XML notifications XML platforms send (Braintree).
                    file.ends_with(".json") || file.ends_with(".xml")
                })
            })
            .count();
        assert!(count > 0, "tests/fixtures/{name}/: no JSON or XML fixture");
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.rs"));
        assert!(tests.exists(), "tests/{name}.rs");
        let kit = testkit::kit(*provider);
        for (step, bodies) in kit.steps(1_800_000_000, 1_800_000_000).all() {
            assert!(
                !bodies.is_empty(),
                "{name}: the testkit lifecycle has no `{step}`"
            );
        }
    }
}

#[test]
fn the_docs_index_lists_exactly_the_registry() {
    assert_eq!(index_providers(), names());
}
