//! One module per verb. Each turns its flags into options and makes one library call.

mod build;

use clap::Subcommand;

use crate::status::Status;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images.
    #[command(subcommand)]
    Build(build::Build),
}

impl Command {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        match self {
            Command::Build(build) => build.run(status).await,
        }
    }
}
