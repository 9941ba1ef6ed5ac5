// Tests nnkern.hpp: trains on the digits (argv[1] = data/digits.csv), checks the
// accuracy, errors as nnkern::Error (code + library message), move-only
// handles, callbacks, and a save/load round trip (argv[2] = scratch directory).
// Built by tests/cpp_bindings.rs with -std=c++17 -Wall -Wextra -Werror.
#include "nnkern.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>
#ifdef __linux__
#include <sys/resource.h>
#endif

static int failures = 0;
#define CHECK(cond, what)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, std::string(what).c_str()); \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#ifdef __linux__
// This process's address-space size (VmSize), in bytes.
static size_t vm_size() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmSize:", 0) == 0) return std::stoul(line.substr(7)) * 1024;
    return 0;
}

static void limit_address_space(rlim_t bytes) {
    rlimit r{bytes, RLIM_INFINITY};
    CHECK(setrlimit(RLIMIT_AS, &r) == 0, "setrlimit");
}
#endif

static_assert(!std::is_copy_constructible_v<nnkern::Mlp> && std::is_nothrow_move_constructible_v<nnkern::Mlp>);
static_assert(!std::is_copy_assignable_v<nnkern::TrainConfig> &&
              std::is_nothrow_move_assignable_v<nnkern::TrainConfig>);

// Runs `f`, expects nnkern::Error with `code` and a message containing `needle`.
template <class F>
static void expect_error(const char* what, int32_t code, const std::string& needle, F&& f) {
    try {
        f();
        CHECK(false, std::string(what) + ": no exception");
    } catch (const nnkern::Error& e) {
        CHECK(e.code() == code, std::string(what) + ": code " + std::to_string(e.code()) + " (" + e.what() + ")");
        CHECK(std::string(e.what()).find(needle) != std::string::npos,
              std::string(what) + ": message '" + e.what() + "' lacks '" + needle + "'");
    }
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: test_nnkern digits.csv scratch_dir\n");
        return 2;
    }
    // Digits: 64 pixels 0..16, then the label.
    std::vector<float> x;
    std::vector<uint32_t> y;
    {
        std::ifstream in(argv[1]);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::stringstream ss(line);
            std::string cell;
            for (int j = 0; std::getline(ss, cell, ','); j++) {
                if (j < 64) x.push_back(std::stof(cell) / 16.0f);
                else y.push_back(static_cast<uint32_t>(std::stoul(cell)));
            }
        }
    }
    CHECK(y.size() == 1797 && x.size() == 1797 * 64, "read " + std::to_string(y.size()) + " rows");
    const size_t d = 64, ntr = 1400, nte = y.size() - ntr;
    std::vector<float> xtr(x.begin(), x.begin() + ntr * d), xte(x.begin() + ntr * d, x.end());
    std::vector<uint32_t> ytr(y.begin(), y.begin() + ntr), yte(y.begin() + ntr, y.end());

    // sgemm helpers.
    std::vector<float> a{1, 2, 3, 4, 5, 6}, b{7, 8, 9, 10, 11, 12};
    std::vector<float> c = nnkern::sgemm(a, b, 2, 2, 3);
    CHECK(c == (std::vector<float>{58, 64, 139, 154}), "sgemm");
    double da[4] = {1, 2, 3, 4}, dc[4] = {1, 1, 1, 1};
    nnkern::dgemm(true, false, 2, 2, 2, 1.0, da, 2, da, 2, 1.0, dc, 2);  // aᵀa + 1
    CHECK(dc[0] == 11 && dc[1] == 15 && dc[2] == 15 && dc[3] == 21, "dgemm");
    expect_error("sgemm ldc too small", NNK_ERR_INVALID_ARG, "invalid argument", [&] {
        nnkern::sgemm(false, false, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 1);
    });
    CHECK(c == (std::vector<float>{58, 64, 139, 154}), "C untouched on error");
    expect_error("sgemm vector sizes", NNK_ERR_SHAPE, "a has 6 values (need 4)", [&] { nnkern::sgemm(a, b, 2, 2, 2); });

    // Train.
    nnkern::Mlp model(d, {{64, nnkern::Activation::Relu}, {10, nnkern::Activation::Softmax}}, 0);
    CHECK(model.n_inputs() == 64 && model.n_outputs() == 10, "getters");
    nnkern::TrainConfig cfg;
    size_t epochs = 0;
    double first_loss = 0, last_loss = 0;
    cfg.epochs(40).batch_size(32).learning_rate(2e-3).solver(nnkern::Solver::Adam).seed(0);
    cfg.sparse_input(nnkern::SparseInput::Auto).flush_denormals(true).on_epoch(
        [&](const nnk_epoch_info& info) {
            epochs = info.epoch;
            if (info.epoch == 1) first_loss = info.loss;
            last_loss = info.loss;
            return false;
        });
    nnkern::TrainConfig moved = std::move(cfg);  // the callback state moves with it
    model.fit_classifier(moved, xtr, d, ytr);
    CHECK(epochs >= 10 && last_loss < first_loss, "callback saw " + std::to_string(epochs) + " epochs");
    std::vector<uint32_t> pred = model.predict_class(xte, d);
    size_t ok = 0;
    for (size_t i = 0; i < nte; i++) ok += pred[i] == yte[i];
    double acc = static_cast<double>(ok) / static_cast<double>(nte);
    std::printf("C++ wrapper: digits test accuracy %.4f\n", acc);
    CHECK(acc >= 0.90, "accuracy " + std::to_string(acc));
    std::vector<float> proba = model.predict_proba(xte, d);
    float s = 0;
    for (size_t j = 0; j < 10; j++) s += proba[j];
    CHECK(proba.size() == nte * 10 && std::fabs(s - 1.0f) < 1e-5f, "probabilities");

    // Errors: code and the library's message.
    expect_error("moved-from config", NNK_ERR_NULL_POINTER, "'config' is NULL", [&] { cfg.epochs(3); });
    expect_error("bad learning rate", NNK_ERR_INVALID_ARG, "invalid argument: learning rate = -1 is out of range",
                 [&] { moved.learning_rate(-1); });
    expect_error("hidden softmax", NNK_ERR_INVALID_ARG, "invalid argument",
                 [&] { nnkern::Mlp bad(4, {{3, nnkern::Activation::Softmax}, {2, nnkern::Activation::Softmax}}); });
    expect_error("unknown activation", NNK_ERR_INVALID_ARG, "unknown activation code 99",
                 [&] { nnkern::Mlp bad(4, {{3, static_cast<nnkern::Activation>(99)}, {2, nnkern::Activation::Softmax}}); });
    expect_error("wrong n_features", NNK_ERR_SHAPE, "shape mismatch: n_features = 63, the model takes 64", [&] {
        std::vector<float> x63(63 * 2, 0.0f);
        model.predict_proba(x63, 63);
    });
    expect_error("labels/x size mismatch", NNK_ERR_SHAPE, "5 labels", [&] {
        model.fit_classifier(moved, std::vector<float>(64 * 4), 64, std::vector<uint32_t>(5));
    });
    expect_error("NaN in x", NNK_ERR_NON_FINITE, "x[0][3] = NaN is not finite", [&] {
        std::vector<float> xn(xtr.begin(), xtr.begin() + 4 * d);
        xn[3] = NAN;
        model.fit_classifier(moved, xn, d, std::vector<uint32_t>(ytr.begin(), ytr.begin() + 4));
    });
    expect_error("missing file", NNK_ERR_IO, "cannot open", [&] { nnkern::Mlp::load("/nonexistent/model.nnk"); });
    {
        std::string bad = std::string(argv[2]) + "/bad_cpp.nnk";
        std::ofstream(bad) << "garbage garbage garbage";
        expect_error("garbage file", NNK_ERR_FORMAT, bad, [&] { nnkern::Mlp::load(bad); });
    }
    try {
        moved.learning_rate(0);
    } catch (const nnkern::Error& e) {
        CHECK(std::string(e.status()) == "invalid argument", "status()");
    }

    // A callback that throws: the exception crosses fit, not the library.
    {
        nnkern::TrainConfig c2;
        c2.epochs(5).on_epoch([](const nnk_epoch_info& info) -> bool {
            if (info.epoch == 2) throw std::runtime_error("stop from callback");
            return false;
        });
        nnkern::Mlp m2(d, {{8, nnkern::Activation::Tanh}, {10, nnkern::Activation::Softmax}}, 1);
        bool caught = false;
        try {
            m2.fit_classifier(c2, xtr, d, ytr);
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "stop from callback";
        }
        CHECK(caught, "callback exception rethrown by fit");
        c2.on_epoch(nullptr).epochs(1);
        m2.fit_classifier(c2, xtr, d, ytr);  // works again, no stale exception
    }

    // Save / load round trip; a moved model keeps working.
    std::string path = std::string(argv[2]) + "/cpp_model.nnk";
    model.save(path);
    nnkern::Mlp loaded = nnkern::Mlp::load(path);
    CHECK(loaded.predict_proba(xte, d) == proba, "save/load changed predictions");
    nnkern::Mlp other = std::move(loaded);
    CHECK(other.n_inputs() == 64 && loaded.get() == nullptr && loaded.n_inputs() == 0, "move");
    expect_error("moved-from model", NNK_ERR_NULL_POINTER, "'model' is NULL", [&] { loaded.predict_class(xte, d); });

    // Status codes: every code has its own text; out of memory is its own
    // exception type, still an nnkern::Error with the code and the message.
    {
        std::vector<std::string> texts;
        for (int32_t code = NNK_OK; code <= NNK_ERR_OUT_OF_MEMORY; code++) {
            std::string t = nnk_status_str(code);
            CHECK(t != "unknown status", "status " + std::to_string(code) + " has no text");
            for (const std::string& u : texts) CHECK(t != u, "status text '" + t + "' used twice");
            texts.push_back(t);
        }
        CHECK(std::string(nnk_status_str(NNK_ERR_OUT_OF_MEMORY + 1)) == "unknown status", "unknown status");
        CHECK(std::string(nnk_status_str(NNK_ERR_OUT_OF_MEMORY)) == "out of memory", "out of memory text");
        bool oom = false;
        try {
            nnkern::detail::raise(NNK_ERR_OUT_OF_MEMORY, "out of memory: cannot allocate 64 bytes for x");
        } catch (const nnkern::OutOfMemory& e) {
            const nnkern::Error& base = e;
            oom = base.code() == NNK_ERR_OUT_OF_MEMORY && std::string(e.what()).find("64 bytes") != std::string::npos &&
                  std::string(base.status()) == "out of memory";
        }
        CHECK(oom, "NNK_ERR_OUT_OF_MEMORY throws nnkern::OutOfMemory with the message");
        bool plain = false;
        try {
            nnkern::detail::raise(NNK_ERR_IO, "i/o error: x");
        } catch (const nnkern::OutOfMemory&) {
        } catch (const nnkern::Error& e) {
            plain = e.code() == NNK_ERR_IO;
        }
        CHECK(plain, "other codes throw plain nnkern::Error");
    }

    // Distributed training: in a library built without the `mpi` feature
    // (what this test links) every setter throws NNK_ERR_UNSUPPORTED and the
    // config stays usable; tests/mpi.rs runs the MPI build.
    {
        nnkern::TrainConfig cfg;
        for (int which = 0; which < 3; which++) {
            int32_t code = NNK_OK;
            try {
                if (which == 0) cfg.distributed(true);
                if (which == 1) cfg.mpi_comm(0);
                if (which == 2) cfg.local_shards(true);
            } catch (const nnkern::Error& e) {
                code = e.code();
            }
            CHECK(code == NNK_ERR_UNSUPPORTED, "distributed setter " + std::to_string(which) + " is unsupported");
        }
        cfg.epochs(1);
        // A NULL config is refused before anything else.
        CHECK(nnk_train_config_set_distributed(nullptr, 1) == NNK_ERR_NULL_POINTER, "set_distributed(NULL)");
        CHECK(nnk_train_config_set_mpi_comm(nullptr, 0) == NNK_ERR_NULL_POINTER, "set_mpi_comm(NULL)");
        CHECK(nnk_train_config_set_data_shard(nullptr, NNK_SHARD_WHOLE) == NNK_ERR_NULL_POINTER, "set_data_shard(NULL)");
    }

    // A model's contents: layers, parameters, bytes, history, partial fits,
    // and the scikit-learn setters.
    {
        nnkern::Mlp m(3, {{4, nnkern::Activation::Tanh}, {2, nnkern::Activation::Softmax}}, 5);
        CHECK(m.n_layers() == 2, "n_layers");
        auto l1 = m.layer(1);
        CHECK(l1.n_in == 4 && l1.n_out == 2 && l1.activation == nnkern::Activation::Softmax, "layer(1)");
        expect_error("layer(2)", NNK_ERR_INVALID_ARG, "does not exist", [&] { m.layer(2); });
        auto [w, b] = m.params(0);
        CHECK(w.size() == 12 && b.size() == 4, "params(0) sizes");
        for (float& v : w) v *= 0.5f;
        m.set_params(0, w, b);
        CHECK(m.params(0).first == w, "set_params then params");
        std::vector<float> bad = w;
        bad[0] = std::nanf("");
        expect_error("set_params(NaN)", NNK_ERR_NON_FINITE, "not finite", [&] { m.set_params(0, bad, b); });
        expect_error("set_params(short)", NNK_ERR_SHAPE, "w_len", [&] { m.set_params(0, b, b); });

        std::vector<float> x;
        std::vector<uint32_t> y;
        for (int i = 0; i < 40; i++) {
            float a = (float)(i % 7) / 7.0f, c = (float)(i % 5) / 5.0f;
            x.insert(x.end(), {a, c, a - c});
            y.push_back(a > c ? 1u : 0u);
        }
        nnkern::TrainConfig cfg;
        cfg.epochs(4).batch_size(8).beta_1(0.8).beta_2(0.99).epsilon(1e-7).l1(1e-4).clip_norm(10.0).tol(0.0);
        cfg.n_iter_no_change(5).shuffle(true).warm_start(false).rho(0.9).validation_fraction(0.2).power_t(0.5);
        cfg.step_factor(0.5);
        expect_error("beta_1(1)", NNK_ERR_INVALID_ARG, "beta_1", [&] { cfg.beta_1(1.0); });
        expect_error("validation_fraction(0)", NNK_ERR_INVALID_ARG, "validation_fraction",
                     [&] { cfg.validation_fraction(0.0); });
        expect_error("history before a fit", NNK_ERR_INVALID_ARG, "no successful fit", [&] { m.history(); });
        m.fit_classifier(cfg, x, 3, y);
        auto h = m.history();
        CHECK(h.summary.n_iter == 4 && h.loss_curve.size() == 4 && h.validation_scores.empty(), "history sizes");
        CHECK(h.summary.samples_seen == 160 && h.summary.steps == 20, "history counts");
        m.partial_fit_classifier(cfg, x.data(), 40, 3, y.data());
        CHECK(m.history().summary.n_iter == 1 && m.history().summary.samples_seen == 200, "partial fit continues");

        std::vector<uint8_t> bytes = m.to_bytes();
        nnkern::Mlp copy = nnkern::Mlp::from_bytes(bytes);
        CHECK(copy.predict_proba(x, 3) == m.predict_proba(x, 3), "bytes round trip predicts the same");
        bytes.resize(bytes.size() / 2);
        expect_error("from_bytes(truncated)", NNK_ERR_FORMAT, "", [&] { nnkern::Mlp::from_bytes(bytes); });

        // The same rows as CSR train to the same bits.
        {
            std::vector<int64_t> indptr{0};
            std::vector<int32_t> indices;
            std::vector<float> data;
            for (int i = 0; i < 40; i++) {
                for (int j = 0; j < 3; j++)
                    if (x[3 * i + j] != 0.0f) {
                        indices.push_back(j);
                        data.push_back(x[3 * i + j]);
                    }
                indptr.push_back((int64_t)indices.size());
            }
            nnk_csr csr{40, 3, data.size(), indptr.data(), indices.data(), data.data()};
            nnkern::Mlp a(3, {{4, nnkern::Activation::Tanh}, {2, nnkern::Activation::Softmax}}, 9);
            nnkern::Mlp b(3, {{4, nnkern::Activation::Tanh}, {2, nnkern::Activation::Softmax}}, 9);
            a.fit_classifier(cfg, x, 3, y);
            b.fit_classifier(cfg, csr, y.data());
            CHECK(a.predict_proba(x, 3) == b.predict_proba(x, 3), "CSR fit = dense fit");
            b.partial_fit_classifier(cfg, csr, y.data());
            csr.n_cols = 4;
            expect_error("CSR of the wrong width", NNK_ERR_SHAPE, "columns", [&] { b.fit_classifier(cfg, csr, y.data()); });
        }

        std::vector<float> t(40);
        nnkern::Mlp r(3, {{4, nnkern::Activation::Relu}, {1, nnkern::Activation::Identity}}, 2);
        for (int i = 0; i < 40; i++) t[i] = x[3 * i] - x[3 * i + 1];
        r.partial_fit_regressor(cfg, x.data(), 40, 3, t.data(), 1);
        CHECK(r.history().summary.n_iter == 1, "regressor partial fit");
    }

#ifdef __linux__
    // A real out-of-memory: 4096-16384-10 holds 67 M weights (256 MiB); its
    // fit needs three times that again, under a limit of 64 MiB more than
    // now. fit throws nnkern::OutOfMemory and the model predicts as before.
    {
        nnkern::Mlp big(4096, {{16384, nnkern::Activation::Relu}, {10, nnkern::Activation::Softmax}}, 1);
        std::vector<float> one(4096, 0.5f), xs(8 * 4096, 0.0f);
        std::vector<uint32_t> ys{0, 1, 2, 3, 4, 5, 6, 7};
        std::vector<float> before = big.predict_proba(one, 4096);
        nnkern::TrainConfig cfg;
        cfg.epochs(1);
        limit_address_space(vm_size() + (64u << 20));
        bool oom = false;
        try {
            big.fit_classifier(cfg, xs, 4096, ys);
        } catch (const nnkern::OutOfMemory& e) {
            oom = std::string(e.what()).find("bytes") != std::string::npos;
        }
        limit_address_space(RLIM_INFINITY);
        CHECK(oom, "a fit beyond the address-space limit throws nnkern::OutOfMemory naming the bytes");
        CHECK(big.predict_proba(one, 4096) == before, "the model changed after a failed fit");
    }
#endif

    if (failures) {
        std::fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    std::printf("test_nnkern: all checks passed (nnkern %s, %s)\n", nnkern::version().c_str(), nnkern::isa().c_str());
    return 0;
}
