//! The README's table of algorithms stays true: one row per registered
//! algorithm (with its aliases), naming every parameter with its default.

use policy::scheduler::registry::Param;
use policy::scheduler::REGISTRY;

#[test]
fn every_registered_algorithm_has_a_readme_row_with_its_parameters() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    for a in REGISTRY {
        let mut name = format!("| `{}`", a.name);
        if !a.aliases.is_empty() {
            let aliases: Vec<String> = a.aliases.iter().map(|x| format!("`{x}`")).collect();
            name = format!("{name} ({})", aliases.join(", "));
        }
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("{name} |")))
            .unwrap_or_else(|| panic!("README.md has no row starting {name:?}"));
        // | name | rule | parameters (defaults) | source |
        let params_cell = row.split('|').nth(3).unwrap_or("");
        for p in a.params {
            let default = match p {
                Param::Count(c) => c.default.to_string(),
                Param::Probability(x) => format!("{:?}", x.default),
                Param::Real(x) => format!("{:?}", x.default),
            };
            // `T1` = `TMax` (8): the name, then its default in parentheses.
            let named = params_cell
                .find(&format!("`{}`", p.name()))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: the README row's parameters do not name {}: {row}",
                        a.name,
                        p.name()
                    )
                });
            let rest = &params_cell[named..];
            let shown = rest.find('(').map(|i| &rest[i + 1..]).unwrap_or("");
            let shown = shown.split(')').next().unwrap_or("");
            let same = shown == default
                || shown.parse::<f64>().ok() == default.parse::<f64>().ok() && !shown.is_empty();
            assert!(
                same,
                "{}: README gives {} as ({shown}), the registry's default is {default}",
                a.name,
                p.name()
            );
        }
    }
}
