//! The entropy start-up the `coldstart` group measures: a fresh process draws its first 32 random
//! bytes from aws-lc (rustls's provider, as the SDK clients' TLS does at its first handshake), then
//! 32 more. Prints the two times in milliseconds. The first draw seeds aws-lc's DRBG: from CPU
//! jitter entropy unless aws-lc-sys was built with `AWS_LC_SYS_NO_JITTER_ENTROPY=1`
//! (.cargo/config.toml), from the kernel (getrandom) when it was.

use std::time::Instant;

fn main() {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut bytes = [0u8; 32];
    let draw = |bytes: &mut [u8]| {
        let started = Instant::now();
        provider
            .secure_random
            .fill(bytes)
            .expect("aws-lc random bytes");
        started.elapsed().as_secs_f64() * 1000.0
    };
    let first = draw(&mut bytes);
    let second = draw(&mut bytes);
    println!("{first} {second}");
}
