//! The command-line form of the scheduler registry's parameters, shared by
//! every program that runs a scheduler (`load-balancer`, `simulator des`),
//! so that they take the same flags and accept exactly the same values.
//!
//! [`SchedulerArgs`] adds, in the order they apply (a later one wins):
//! - one flag and environment variable per bare parameter name of the
//!   registry: the original's `T`, `T1`, `T2`, `T3`, `ALPHA`, `BETA`
//!   (`--T 4` or `T=4` sets `T` in every algorithm that has it);
//! - `--seed` (or `SEED`);
//! - each `--param KEY=VALUE` (`ch.T=4`, `T=4`, `seed=7`).
//!
//! The registry ([`ParamSet::set`]) checks every value, as it does for the
//! balancer's `/configure` and the experiment's `--set`.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use policy::scheduler::{registry, ParamError, ParamSet, REGISTRY};

/// Scheduler parameters given on a command line, in the order they apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerArgs {
    settings: Vec<(String, String)>,
}

const SEED_ARG: &str = "seed";
const PARAM_ARG: &str = "param";

impl SchedulerArgs {
    /// The settings as `(key, value)` pairs, in the order they apply.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// The defaults with these settings applied; the first bad one is an
    /// error naming its key.
    pub fn param_set(&self) -> Result<ParamSet, ParamError> {
        ParamSet::from_settings(self.settings.iter().map(|(k, v)| (k, v)))
    }
}

impl Args for SchedulerArgs {
    fn augment_args(command: Command) -> Command {
        let command = registry::param_names()
            .into_iter()
            .fold(command, |command, name| {
                let keys: Vec<String> = REGISTRY
                    .iter()
                    .filter(|a| a.params.iter().any(|p| p.name() == name))
                    .map(|a| format!("{}.{name}", a.name))
                    .collect();
                command.arg(
                    Arg::new(name)
                        .long(name)
                        .env(name)
                        .value_name("VALUE")
                        .action(ArgAction::Set)
                        .help(format!(
                            "Scheduler: sets {} (as --param {name}=VALUE)",
                            keys.join(", ")
                        )),
                )
            });
        command
            .arg(
                Arg::new(SEED_ARG)
                    .long(SEED_ARG)
                    .env("SEED")
                    .value_name("SEED")
                    .action(ArgAction::Set)
                    .help(
                        "Seed of the scheduler's RNG, recorded in every run's output (default 0)",
                    ),
            )
            .arg(
                Arg::new(PARAM_ARG)
                    .long(PARAM_ARG)
                    .value_name("KEY=VALUE")
                    .action(ArgAction::Append)
                    .help("A scheduler parameter, KEY=VALUE (repeatable): ch.T=4, T=4, seed=7")
                    .long_help(format!(
                        "A scheduler parameter, KEY=VALUE (repeatable), applied after the \
                         flags and environment variables. Keys:{}",
                        registry::params_help()
                    )),
            )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for SchedulerArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut settings = Vec::new();
        for name in registry::param_names() {
            if let Some(v) = matches.get_one::<String>(name) {
                settings.push((name.to_string(), v.clone()));
            }
        }
        if let Some(seed) = matches.get_one::<String>(SEED_ARG) {
            settings.push((registry::SEED.to_string(), seed.clone()));
        }
        for param in matches.get_many::<String>(PARAM_ARG).into_iter().flatten() {
            let (k, v) = registry::parse_assignment(param).map_err(|e| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("--param: {e}\n"),
                )
            })?;
            settings.push((k.to_string(), v.to_string()));
        }
        self.settings = settings;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        scheduler: SchedulerArgs,
    }

    #[test]
    fn flags_then_seed_then_params_in_order() {
        let cli = Cli::try_parse_from([
            "x", "--param", "ch.T=4", "--T", "6", "--seed", "9", "--param", "seed=5",
        ])
        .unwrap();
        let set = cli.scheduler.param_set().unwrap();
        assert_eq!(set.seed(), 5, "--param comes last");
        let ch = set.scheduler("ch").unwrap();
        assert_eq!(serde_json::to_value(&ch).unwrap()["params"]["T"], 4);
        let pasch = set.scheduler("pasch").unwrap();
        assert_eq!(serde_json::to_value(&pasch).unwrap()["params"]["T"], 6);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cli = Cli::try_parse_from(["x", "--T", "0"]).unwrap();
        let e = cli.scheduler.param_set().unwrap_err().to_string();
        assert!(e.contains('T'), "{e}");
        assert!(Cli::try_parse_from(["x", "--param", "no-equals"]).is_err());
        let cli = Cli::try_parse_from(["x", "--param", "nope.T=3"]).unwrap();
        assert!(cli.scheduler.param_set().is_err());
    }
}
