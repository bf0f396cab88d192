//! The operator's manual's table of `run` flags (`docs/operating.md`) matches the flags the binary
//! has: every flag is there, with its environment variable and its default, and the table names
//! no flag that does not exist.

use clap::CommandFactory;
use reconciler_host::cli::Cli;

/// One row of the manual's flag table: `| `--flag ARG` | `ENV` | default | meaning |`.
struct Row {
    flag: String,
    env: String,
    default: String,
}

fn manual_rows() -> Vec<Row> {
    let manual = include_str!("../../docs/operating.md");
    manual
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            // `\|` escapes a pipe inside a cell (`text\|json`).
            let cells: Vec<String> = line
                .replace("\\|", "/")
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect();
            let flag = cells[1]
                .trim_matches('`')
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("--")
                .to_string();
            Row {
                flag,
                env: cells[2].trim_matches('`').to_string(),
                default: cells[3].clone(),
            }
        })
        .collect()
}

#[test]
fn every_run_flag_is_in_the_manual_with_its_env_and_default() {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("a run subcommand");
    let rows = manual_rows();
    let flags: Vec<&clap::Arg> = cli
        .get_arguments()
        .chain(run.get_arguments())
        .filter(|arg| {
            arg.get_long()
                .is_some_and(|l| l != "help" && l != "version")
        })
        .collect();
    let mut missing = Vec::new();
    for arg in &flags {
        let long = arg.get_long().unwrap();
        let Some(row) = rows.iter().find(|row| row.flag == long) else {
            missing.push(format!(
                "--{long} is not in the flag table of docs/operating.md"
            ));
            continue;
        };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        if env.as_deref() != Some(row.env.as_str()) {
            missing.push(format!(
                "--{long}: docs/operating.md says env {}, the binary {env:?}",
                row.env
            ));
        }
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            // Switches default to "false", which the table says as "off".
            if default != "false" && !row.default.contains(&format!("`{default}`")) {
                missing.push(format!(
                    "--{long}: docs/operating.md's default is {}, the binary's `{default}`",
                    row.default
                ));
            }
        }
    }
    for row in &rows {
        if !flags.iter().any(|arg| arg.get_long() == Some(&row.flag)) {
            missing.push(format!(
                "docs/operating.md lists --{}, which `run` does not have",
                row.flag
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
