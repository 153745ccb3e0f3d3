//! The `ssmgen` command-line tool.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Likelihood(a) => cli::likelihood::run(a),
        cli::Command::Embed(a) => cli::embed::run(a),
        cli::Command::ScoreVariants(a) => cli::score_variants::run(a),
        cli::Command::Info(a) => cli::info::run(a),
        cli::Command::Models => cli::info::models(),
        cli::Command::Completions { shell } => cli::completions(shell),
        cli::Command::Man { command } => cli::man(command.as_deref()),
        cli::Command::Shards(a) => cli::shards::run(a),
    };
    if let Err(err) = result {
        let broken_pipe = err
            .chain()
            .any(|e| match e.downcast_ref::<ssmgen::Error>() {
                Some(ssmgen::Error::Io { cause, .. }) => {
                    cause.kind() == std::io::ErrorKind::BrokenPipe
                }
                _ => e
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe),
            });
        if broken_pipe {
            std::process::exit(0);
        }
        // Names from input files may hold newlines or escapes: keep the message one line.
        let message = ssmgen::error::escape_controls(&format!("{err:#}"));
        eprintln!("ssmgen: error: {message}");
        std::process::exit(1);
    }
}
