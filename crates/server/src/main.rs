use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = keygate_server::cli::Cli::parse();
    if let Err(e) = keygate_server::cli::run(cli).await {
        eprintln!("keygate: {e}");
        std::process::exit(1);
    }
}
