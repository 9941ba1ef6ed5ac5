//! The model-file loader on arbitrary bytes: never a panic or a huge
//! allocation; whatever loads re-saves to the same bytes and predicts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::nn::Mlp;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Mlp::from_bytes(data) else { return };
    let bytes = m.to_bytes();
    let again = Mlp::from_bytes(&bytes).expect("a model that loaded must reload after saving");
    assert_eq!(bytes, again.to_bytes(), "save/load is not a fixed point");
    if m.n_inputs() <= 4096 {
        let x = vec![0.5f32; m.n_inputs() * 2];
        // Weights may be anything finite; prediction must not panic.
        let _ = m.predict_proba(&x, 2);
    }
});
