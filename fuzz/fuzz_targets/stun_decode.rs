//! Fuzz target: whatever bytes arrive from the network, the STUN/TURN decoder returns a message or
//! an error, never panics; a message it accepts re-encodes to one that decodes to the same thing.

#![no_main]

use cityd::turn::{StreamDeframer, decode, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // One UDP datagram.
    if let Ok(decoded) = decode(data) {
        let _ = decoded.verify_integrity(b"fuzz-key");
        let _ = decoded.verify_integrity_sha256(b"fuzz-key");
        // Lossy text (SOFTWARE, reason phrases) may grow past the length limit; anything else
        // must survive a round trip.
        if let Ok(bytes) = decoded.message.encode(Some(b"fuzz-key"), true) {
            let again = decode(&bytes).expect("our own encoding decodes");
            assert_eq!(again.message, decoded.message);
        }
    }
    let _ = decode_frame(data);
    // A TCP stream: cut into frames, decode each.
    let mut stream = StreamDeframer::new();
    stream.push(data);
    while let Ok(Some(frame)) = stream.next_frame() {
        let _ = decode_frame(&frame);
    }
});
