//! One module per verb. Each turns its flags into options and makes one library call.

mod build;
mod cluster;
mod dump;
mod get;
mod images;

use clap::{CommandFactory, Subcommand};

use crate::status::Status;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images.
    #[command(subcommand)]
    Build(build::Build),
    /// Bring a cluster up: form it, or restore it after `down`.
    Up(cluster::Up),
    /// Rebuild the node image (when kdind built it) and replace the cluster's nodes with it,
    /// keeping the cluster's state.
    Reup(cluster::Up),
    /// Form a new cluster like `up`, passing the arguments after `--` to `kubeadm init`.
    Init(cluster::Kubeadm),
    /// Add a worker node to a running cluster, passing the arguments after `--` to
    /// `kubeadm join`.
    Join(cluster::Kubeadm),
    /// Print the effective settings (config file, environment, flags) as YAML, with where each
    /// came from.
    Config(cluster::ShowConfig),
    /// Stop a cluster's nodes, keeping their state for the next `up`.
    Down(cluster::Down),
    /// Remove a cluster: nodes, volumes, network and kubeconfig context.
    Clean(cluster::Clean),
    /// Freeze every node of a cluster (no CPU used; state kept in memory).
    Pause(get::Pause),
    /// Thaw the nodes of a paused cluster.
    Unpause(get::Pause),
    /// Print the host port of the cluster's API server.
    ApiserverPort(get::ApiserverPort),
    /// Show clusters, nodes and kubeconfigs.
    #[command(subcommand)]
    Get(get::Get),
    /// Print the cluster's state and logs as one text of many files, for CI logs.
    Dump(dump::Dump),
    /// Like `dump`, compressed and base64-encoded between markers.
    Dump64(dump::Dump),
    /// Split a dump read from standard input into ./cluster-dump/.
    SplitDump,
    /// Find a `dump64` block in a log read from standard input and split it into
    /// ./cluster-dump/.
    SplitDump64,
    /// Export a cluster's logs, or its kubeconfig context.
    #[command(subcommand)]
    Export(dump::Export),
    /// Copy images of the Docker engine into every node of a cluster (like `load docker-image`).
    CopyImage(images::CopyImage),
    /// Put images into every node of a cluster: from the Docker engine, or from archives.
    #[command(subcommand)]
    Load(images::Load),
    /// Print a shell completion script: `source <(kdind completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        match self {
            Command::Build(build) => build.run(status).await,
            Command::Up(up) => up.run(status).await,
            Command::Reup(up) => up.reup(status).await,
            Command::Init(init) => init.init(status).await,
            Command::Join(join) => join.join(status).await,
            Command::Config(config) => config.run(),
            Command::Down(down) => down.run(status).await,
            Command::Clean(clean) => clean.run(status).await,
            Command::Pause(pause) => pause.run(status, true).await,
            Command::Unpause(pause) => pause.run(status, false).await,
            Command::ApiserverPort(port) => port.run().await,
            Command::Get(get) => get.run().await,
            Command::Dump(dump) => dump.run(status, false).await,
            Command::Dump64(dump) => dump.run(status, true).await,
            Command::SplitDump => dump::split(false),
            Command::SplitDump64 => dump::split(true),
            Command::Export(export) => export.run(status).await,
            Command::CopyImage(copy) => copy.run(status).await,
            Command::Load(load) => load.run(status).await,
            Command::Completion { shell } => {
                let mut command = crate::Cli::command();
                clap_complete::generate(shell, &mut command, "kdind", &mut std::io::stdout());
                Ok(())
            }
        }
    }
}

/// Completes when the user or a supervisor asks kdind to stop: Ctrl-C (SIGINT), SIGTERM (what
/// CI runners and `timeout` send) or SIGHUP (a closed terminal). Commands that make things race
/// their work against it, so that what they made is removed rather than left half-made.
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(err) => tracing::warn!("cannot watch for signal {kind:?}: {err}"),
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
    futures_util::future::select_all(waits).await;
}
