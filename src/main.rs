use clap::Parser;

/// mimalloc instead of the system allocator: a search allocates per-segment bit sets,
/// decompression buffers and JSON values on many threads, and glibc's allocator spent
/// a sixth of a search request in malloc, free and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = arrears::cli::Cli::parse();
    match arrears::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
