//! `dvtd`: the edge daemon (see the daemon issue); not yet implemented.

fn main() {
    eprintln!("dvtd: the daemon is not implemented yet");
    std::process::exit(2);
}
