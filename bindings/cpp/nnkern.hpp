// nnkern.hpp: header-only C++17 RAII wrappers over the nnkern C API (nnkern.h).
//
// * Handles (`Mlp`, `TrainConfig`) are move-only and own their C handle through
//   std::unique_ptr with the matching nnk_*_free deleter. A moved-from object
//   holds NULL: calls on it throw Error(NNK_ERR_NULL_POINTER).
// * Every nonzero status throws `nnkern::Error`, carrying the status code and
//   the library's message for the failed call (nnk_last_error_message(), copied
//   at once since it is only valid until the next call on the thread);
//   NNK_ERR_OUT_OF_MEMORY throws its subclass `nnkern::OutOfMemory`, so that it
//   can be told apart (and caught) like std::bad_alloc without losing the
//   message, which names the size and what it was for.
// * Inputs are pointer + size or std::vector; matrices are row-major.
// * An exception thrown by an epoch callback is caught at the C boundary (it
//   never unwinds through the library), stops training and is rethrown by fit.
//
// Link against libnnkern.a (plus the native libraries the README lists) or
// libnnkern.so.
#ifndef NNKERN_HPP
#define NNKERN_HPP

#include "nnkern.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nnkern {

/// A nonzero status from the library (or a size mismatch found by these wrappers).
class Error : public std::runtime_error {
public:
    Error(int32_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
    /// The NNK_ERR_* status.
    int32_t code() const noexcept { return code_; }
    /// The short name of the status ("invalid argument", "shape mismatch", ...).
    const char* status() const noexcept { return nnk_status_str(code_); }

private:
    int32_t code_;
};

/// NNK_ERR_OUT_OF_MEMORY: an allocation inside the library failed; what()
/// names its size and purpose. Nothing was changed.
class OutOfMemory : public Error {
public:
    explicit OutOfMemory(const std::string& message) : Error(NNK_ERR_OUT_OF_MEMORY, message) {}
};

namespace detail {
/// Throws the exception for a nonzero status with `message`: OutOfMemory for
/// NNK_ERR_OUT_OF_MEMORY, Error for every other code.
[[noreturn]] inline void raise(int32_t status, const std::string& message) {
    if (status == NNK_ERR_OUT_OF_MEMORY) throw OutOfMemory(message);
    throw Error(status, message);
}
/// Throws for a nonzero status, with this thread's last message.
inline void check(int32_t status) {
    if (status != NNK_OK) raise(status, nnk_last_error_message());
}
struct MlpDeleter {
    void operator()(nnk_mlp* m) const noexcept { nnk_mlp_free(m); }
};
struct ConfigDeleter {
    void operator()(nnk_train_config* c) const noexcept { nnk_train_config_free(c); }
};
inline size_t rows_of(size_t len, size_t n_features, const char* what) {
    if (n_features == 0 || len % n_features != 0)
        throw Error(NNK_ERR_SHAPE, std::string("shape mismatch: ") + what + " has " + std::to_string(len) +
                                       " values, not a multiple of n_features = " + std::to_string(n_features));
    return len / n_features;
}
}  // namespace detail

/// Library version ("0.1.0") and the instruction set in use ("avx2", ...).
inline std::string version() { return nnk_version(); }
inline std::string isa() { return nnk_isa_name(); }
/// Process-wide kernel threads (0 = all cores).
inline void set_num_threads(size_t n) { detail::check(nnk_set_num_threads(n)); }
inline size_t num_threads() { return nnk_get_num_threads(); }

enum class Activation : uint32_t {
    Identity = NNK_ACT_IDENTITY,
    Relu = NNK_ACT_RELU,
    Sigmoid = NNK_ACT_SIGMOID,
    Tanh = NNK_ACT_TANH,
    Softmax = NNK_ACT_SOFTMAX,
    LeakyRelu = NNK_ACT_LEAKY_RELU,
    Elu = NNK_ACT_ELU,
    Softplus = NNK_ACT_SOFTPLUS,
    Gelu = NNK_ACT_GELU,
    LogSoftmax = NNK_ACT_LOG_SOFTMAX,
};

enum class Solver : uint32_t {
    Sgd = NNK_SOLVER_SGD,
    Adam = NNK_SOLVER_ADAM,
    AdamW = NNK_SOLVER_ADAMW,
    RmsProp = NNK_SOLVER_RMSPROP,
};

enum class SparseInput : uint32_t {
    Auto = NNK_SPARSE_AUTO,
    Dense = NNK_SPARSE_DENSE,
    Sparse = NNK_SPARSE_SPARSE,
};

enum class Schedule : uint32_t {
    Constant = NNK_SCHEDULE_CONSTANT,
    InvScaling = NNK_SCHEDULE_INVSCALING,
    Adaptive = NNK_SCHEDULE_ADAPTIVE,
    Step = NNK_SCHEDULE_STEP,
    Cosine = NNK_SCHEDULE_COSINE,
};

// ---- GEMM ----------------------------------------------------------------------------

/// Row-major `C ← alpha·op(A)·op(B) + beta·C` (op(A) m×k, op(B) k×n), CBLAS leading dimensions.
inline void sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                  const float* b, size_t ldb, float beta, float* c, size_t ldc) {
    detail::check(nnk_sgemm(NNK_ROW_MAJOR, trans_a ? NNK_TRANS : NNK_NO_TRANS, trans_b ? NNK_TRANS : NNK_NO_TRANS, m,
                            n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}

/// Double precision, as sgemm.
inline void dgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, double alpha, const double* a,
                  size_t lda, const double* b, size_t ldb, double beta, double* c, size_t ldc) {
    detail::check(nnk_dgemm(NNK_ROW_MAJOR, trans_a ? NNK_TRANS : NNK_NO_TRANS, trans_b ? NNK_TRANS : NNK_NO_TRANS, m,
                            n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}

/// `A·B` of dense row-major `a` (m×k) and `b` (k×n): a new m×n vector.
inline std::vector<float> sgemm(const std::vector<float>& a, const std::vector<float>& b, size_t m, size_t n,
                                size_t k) {
    if (a.size() != m * k || b.size() != k * n)
        throw Error(NNK_ERR_SHAPE, "shape mismatch: a has " + std::to_string(a.size()) + " values (need " +
                                       std::to_string(m * k) + "), b has " + std::to_string(b.size()) +
                                       " (need " + std::to_string(k * n) + ")");
    std::vector<float> c(m * n);
    sgemm(false, false, m, n, k, 1.0f, a.data(), k ? k : 1, b.data(), n ? n : 1, 0.0f, c.data(), n ? n : 1);
    return c;
}

// ---- trainer -------------------------------------------------------------------------

/// One dense layer: `units` outputs with `activation`.
struct Layer {
    size_t units;
    Activation activation;
};

/// Training hyper-parameters (scikit-learn's defaults). Setters chain.
class TrainConfig {
public:
    /// Called after every epoch; return true to stop training.
    using Callback = std::function<bool(const nnk_epoch_info&)>;

    TrainConfig() {
        nnk_train_config* c = nullptr;
        detail::check(nnk_train_config_new(&c));
        h_.reset(c);
    }
    TrainConfig(TrainConfig&&) noexcept = default;
    TrainConfig& operator=(TrainConfig&&) noexcept = default;
    TrainConfig(const TrainConfig&) = delete;
    TrainConfig& operator=(const TrainConfig&) = delete;

    TrainConfig& epochs(size_t n) { return set(nnk_train_config_set_epochs(get(), n)); }
    TrainConfig& batch_size(size_t n) { return set(nnk_train_config_set_batch_size(get(), n)); }
    TrainConfig& learning_rate(double lr) { return set(nnk_train_config_set_learning_rate(get(), lr)); }
    TrainConfig& alpha(double l2) { return set(nnk_train_config_set_alpha(get(), l2)); }
    TrainConfig& solver(Solver s) { return set(nnk_train_config_set_solver(get(), static_cast<uint32_t>(s))); }
    TrainConfig& seed(uint64_t s) { return set(nnk_train_config_set_seed(get(), s)); }
    TrainConfig& threads(size_t n) { return set(nnk_train_config_set_threads(get(), n)); }
    TrainConfig& sparse_input(SparseInput m) {
        return set(nnk_train_config_set_sparse_input(get(), static_cast<uint32_t>(m)));
    }
    /// Flush subnormal numbers to zero while training (default true).
    TrainConfig& flush_denormals(bool on) { return set(nnk_train_config_set_flush_denormals(get(), on ? 1u : 0u)); }
    TrainConfig& momentum(double m, bool nesterov = true) {
        return set(nnk_train_config_set_momentum(get(), m, nesterov ? 1u : 0u));
    }
    TrainConfig& schedule(Schedule s, double param = 0.0) {
        return set(nnk_train_config_set_schedule(get(), static_cast<uint32_t>(s), param));
    }
    /// Data-parallel training over MPI with the communicator whose Fortran
    /// handle is `fortran_comm` (`MPI_Comm_c2f(comm)`); throws nnkern::Error
    /// with NNK_ERR_UNSUPPORTED from a library built without the `mpi` feature.
    TrainConfig& mpi_comm(int64_t fortran_comm) { return set(nnk_train_config_set_mpi_comm(get(), fortran_comm)); }
    /// Data-parallel training over MPI_COMM_WORLD (true) or none (false).
    TrainConfig& distributed(bool on) { return set(nnk_train_config_set_distributed(get(), on ? 1u : 0u)); }
    /// Whether each rank passes the whole data (false, default) or its own part (true).
    TrainConfig& local_shards(bool local) {
        return set(nnk_train_config_set_data_shard(get(), local ? NNK_SHARD_LOCAL : NNK_SHARD_WHOLE));
    }
    /// Adam's β1 and β2 in [0, 1) (0.9, 0.999), and ε > 0 of Adam and RMSprop (1e-8).
    TrainConfig& beta_1(double b) { return set(nnk_train_config_set_beta_1(get(), b)); }
    TrainConfig& beta_2(double b) { return set(nnk_train_config_set_beta_2(get(), b)); }
    TrainConfig& epsilon(double e) { return set(nnk_train_config_set_epsilon(get(), e)); }
    /// RMSprop's decay in [0, 1) (0.9).
    TrainConfig& rho(double r) { return set(nnk_train_config_set_rho(get(), r)); }
    /// L1 penalty on the weights (0).
    TrainConfig& l1(double l) { return set(nnk_train_config_set_l1(get(), l)); }
    /// Clip the global gradient norm of each step (0 = off, the default).
    TrainConfig& clip_norm(double c) { return set(nnk_train_config_set_clip_norm(get(), c)); }
    /// Reshuffle every epoch (true).
    TrainConfig& shuffle(bool on) { return set(nnk_train_config_set_shuffle(get(), on ? 1u : 0u)); }
    /// Keep the optimizer state of the model's previous fit (false).
    TrainConfig& warm_start(bool on) { return set(nnk_train_config_set_warm_start(get(), on ? 1u : 0u)); }
    /// Improvement threshold (1e-4) and epochs without improvement before stopping (10).
    TrainConfig& tol(double t) { return set(nnk_train_config_set_tol(get(), t)); }
    TrainConfig& n_iter_no_change(size_t n) { return set(nnk_train_config_set_n_iter_no_change(get(), n)); }
    /// The fraction held out with early stopping, in (0, 1) (0.1).
    TrainConfig& validation_fraction(double f) { return set(nnk_train_config_set_validation_fraction(get(), f)); }
    /// The invscaling schedule's exponent (0.5) and the step schedule's factor (0.5).
    TrainConfig& power_t(double p) { return set(nnk_train_config_set_power_t(get(), p)); }
    TrainConfig& step_factor(double f) { return set(nnk_train_config_set_step_factor(get(), f)); }
    TrainConfig& early_stopping(bool enable, double validation_fraction = 0.1, size_t n_iter_no_change = 10,
                                double tol = 1e-4) {
        return set(nnk_train_config_set_early_stopping(get(), enable ? 1u : 0u, validation_fraction,
                                                       n_iter_no_change, tol));
    }
    /// Installs (or, with an empty function, removes) the per-epoch callback.
    TrainConfig& on_epoch(Callback fn) {
        if (!fn) {
            detail::check(nnk_train_config_set_callback(get(), nullptr, nullptr));
            cb_.reset();
            return *this;
        }
        // Heap state: its address (the `user` pointer) survives moves of *this.
        auto st = std::make_unique<CallbackState>();
        st->fn = std::move(fn);
        detail::check(nnk_train_config_set_callback(get(), &TrainConfig::trampoline, st.get()));
        cb_ = std::move(st);
        return *this;
    }

    nnk_train_config* get() const noexcept { return h_.get(); }

    /// Rethrows (once) an exception the callback threw during the last fit.
    void rethrow_callback_error() const {
        if (cb_ && cb_->error) {
            std::exception_ptr e = std::exchange(cb_->error, nullptr);
            std::rethrow_exception(e);
        }
    }

private:
    struct CallbackState {
        Callback fn;
        std::exception_ptr error;
    };
    static int32_t trampoline(const nnk_epoch_info* info, void* user) {
        auto* st = static_cast<CallbackState*>(user);
        try {
            return st->fn(*info) ? 1 : 0;
        } catch (...) {  // never unwind into the library
            st->error = std::current_exception();
            return 1;
        }
    }
    TrainConfig& set(int32_t status) {
        detail::check(status);
        return *this;
    }

    std::unique_ptr<nnk_train_config, detail::ConfigDeleter> h_;
    std::unique_ptr<CallbackState> cb_;
};

/// A multilayer perceptron. Predictions and save may run concurrently on one
/// model; fit needs it exclusively.
class Mlp {
public:
    /// `layers.back()` is the output: Softmax (classes ≥ 2), Sigmoid or Identity.
    Mlp(size_t n_inputs, const std::vector<Layer>& layers, uint64_t seed = 0) {
        std::vector<size_t> units;
        std::vector<uint32_t> acts;
        for (const Layer& l : layers) {
            units.push_back(l.units);
            acts.push_back(static_cast<uint32_t>(l.activation));
        }
        nnk_mlp* m = nullptr;
        detail::check(nnk_mlp_new(n_inputs, layers.size(), units.data(), acts.data(), seed, &m));
        h_.reset(m);
    }
    Mlp(Mlp&&) noexcept = default;
    Mlp& operator=(Mlp&&) noexcept = default;
    Mlp(const Mlp&) = delete;
    Mlp& operator=(const Mlp&) = delete;

    /// Loads a model file (Error NNK_ERR_IO / NNK_ERR_FORMAT on failure).
    static Mlp load(const std::string& path) {
        nnk_mlp* m = nullptr;
        detail::check(nnk_mlp_load(path.c_str(), &m));
        return Mlp(m);
    }
    void save(const std::string& path) const { detail::check(nnk_mlp_save(get(), path.c_str())); }

    /// A model from the bytes of `to_bytes` or a model file (Error NNK_ERR_FORMAT when corrupt).
    static Mlp from_bytes(const std::vector<uint8_t>& bytes) {
        nnk_mlp* m = nullptr;
        detail::check(nnk_mlp_from_bytes(bytes.data(), bytes.size(), &m));
        return Mlp(m);
    }
    /// The model in the file format, in memory.
    std::vector<uint8_t> to_bytes() const {
        size_t len = 0;
        detail::check(nnk_mlp_to_bytes(get(), nullptr, 0, &len));
        std::vector<uint8_t> out(len);
        detail::check(nnk_mlp_to_bytes(get(), out.data(), out.size(), &len));
        return out;
    }

    /// A layer's shape and activation.
    struct LayerInfo {
        size_t n_in;
        size_t n_out;
        Activation activation;
    };
    size_t n_layers() const noexcept { return nnk_mlp_n_layers(get()); }
    LayerInfo layer(size_t i) const {
        LayerInfo l{0, 0, Activation::Identity};
        uint32_t act = 0;
        detail::check(nnk_mlp_layer(get(), i, &l.n_in, &l.n_out, &act));
        l.activation = static_cast<Activation>(act);
        return l;
    }
    /// Layer `i`'s weights (row-major n_in × n_out) and biases.
    std::pair<std::vector<float>, std::vector<float>> params(size_t i) const {
        LayerInfo l = layer(i);
        std::vector<float> w(l.n_in * l.n_out), b(l.n_out);
        detail::check(nnk_mlp_get_params(get(), i, w.data(), w.size(), b.data(), b.size()));
        return {std::move(w), std::move(b)};
    }
    /// Replaces layer `i`'s weights and biases (Error on wrong sizes or non-finite values).
    void set_params(size_t i, const std::vector<float>& w, const std::vector<float>& b) {
        detail::check(nnk_mlp_set_params(get(), i, w.data(), w.size(), b.data(), b.size()));
    }

    /// The last successful fit's summary, loss per epoch and validation scores.
    struct History {
        nnk_fit_summary summary;
        std::vector<double> loss_curve;
        std::vector<double> validation_scores;
    };
    History history() const {
        History h{};
        detail::check(nnk_mlp_fit_history(get(), &h.summary, nullptr, nullptr, 0));
        // Both arrays take up to `cap` values; there are never more scores than epochs.
        size_t cap = std::max(h.summary.n_iter, h.summary.n_validation_scores);
        h.loss_curve.resize(cap);
        h.validation_scores.resize(cap);
        detail::check(nnk_mlp_fit_history(get(), nullptr, h.loss_curve.data(), h.validation_scores.data(), cap));
        h.loss_curve.resize(h.summary.n_iter);
        h.validation_scores.resize(h.summary.n_validation_scores);
        return h;
    }

    size_t n_inputs() const noexcept { return nnk_mlp_n_inputs(get()); }
    size_t n_outputs() const noexcept { return nnk_mlp_n_outputs(get()); }
    nnk_mlp* get() const noexcept { return h_.get(); }

    /// Classifier training on `n_samples × n_features` inputs and `n_samples` labels.
    void fit_classifier(const TrainConfig& cfg, const float* x, size_t n_samples, size_t n_features,
                        const uint32_t* labels) {
        int32_t st = nnk_mlp_fit_classifier(get(), cfg.get(), x, n_samples, n_features, labels);
        finish_fit(cfg, st);
    }
    /// `x.size()` must be `labels.size() × n_features`.
    void fit_classifier(const TrainConfig& cfg, const std::vector<float>& x, size_t n_features,
                        const std::vector<uint32_t>& labels) {
        if (x.size() != labels.size() * n_features)
            throw Error(NNK_ERR_SHAPE, "shape mismatch: x has " + std::to_string(x.size()) + " values but " +
                                           std::to_string(labels.size()) + " labels × " +
                                           std::to_string(n_features) + " features need " +
                                           std::to_string(labels.size() * n_features));
        fit_classifier(cfg, x.data(), labels.size(), n_features, labels.data());
    }
    /// Regression / multi-label training on dense targets (`n_samples × n_targets`).
    void fit_regressor(const TrainConfig& cfg, const float* x, size_t n_samples, size_t n_features, const float* y,
                       size_t n_targets) {
        int32_t st = nnk_mlp_fit_regressor(get(), cfg.get(), x, n_samples, n_features, y, n_targets);
        finish_fit(cfg, st);
    }
    void fit_regressor(const TrainConfig& cfg, const std::vector<float>& x, size_t n_features,
                       const std::vector<float>& y, size_t n_targets) {
        size_t n = detail::rows_of(x.size(), n_features, "x");
        if (y.size() != n * n_targets)
            throw Error(NNK_ERR_SHAPE, "shape mismatch: y has " + std::to_string(y.size()) + " values, need " +
                                           std::to_string(n * n_targets));
        fit_regressor(cfg, x.data(), n, n_features, y.data(), n_targets);
    }

    /// Training on a CSR matrix (`x.n_rows` samples; see nnk_csr), never made dense as a whole.
    void fit_classifier(const TrainConfig& cfg, const nnk_csr& x, const uint32_t* labels) {
        finish_fit(cfg, nnk_mlp_fit_classifier_csr(get(), cfg.get(), &x, labels));
    }
    void fit_regressor(const TrainConfig& cfg, const nnk_csr& x, const float* y, size_t n_targets) {
        finish_fit(cfg, nnk_mlp_fit_regressor_csr(get(), cfg.get(), &x, y, n_targets));
    }
    void partial_fit_classifier(const TrainConfig& cfg, const nnk_csr& x, const uint32_t* labels) {
        finish_fit(cfg, nnk_mlp_partial_fit_classifier_csr(get(), cfg.get(), &x, labels));
    }
    void partial_fit_regressor(const TrainConfig& cfg, const nnk_csr& x, const float* y, size_t n_targets) {
        finish_fit(cfg, nnk_mlp_partial_fit_regressor_csr(get(), cfg.get(), &x, y, n_targets));
    }

    /// One more pass keeping the optimizer state (scikit-learn's partial_fit).
    void partial_fit_classifier(const TrainConfig& cfg, const float* x, size_t n_samples, size_t n_features,
                                const uint32_t* labels) {
        int32_t st = nnk_mlp_partial_fit_classifier(get(), cfg.get(), x, n_samples, n_features, labels);
        finish_fit(cfg, st);
    }
    void partial_fit_regressor(const TrainConfig& cfg, const float* x, size_t n_samples, size_t n_features,
                               const float* y, size_t n_targets) {
        int32_t st = nnk_mlp_partial_fit_regressor(get(), cfg.get(), x, n_samples, n_features, y, n_targets);
        finish_fit(cfg, st);
    }

    /// Output activations into `out` (`out_len` = n_samples × n_outputs).
    void predict_proba(const float* x, size_t n_samples, size_t n_features, float* out, size_t out_len) const {
        detail::check(nnk_mlp_predict_proba(get(), x, n_samples, n_features, out, out_len));
    }
    std::vector<float> predict_proba(const std::vector<float>& x, size_t n_features) const {
        size_t n = detail::rows_of(x.size(), n_features, "x");
        std::vector<float> out(n * n_outputs());
        predict_proba(x.data(), n, n_features, out.data(), out.size());
        return out;
    }
    /// Predicted class per sample into `out` (`out_len` = n_samples).
    void predict_class(const float* x, size_t n_samples, size_t n_features, uint32_t* out, size_t out_len) const {
        detail::check(nnk_mlp_predict_class(get(), x, n_samples, n_features, out, out_len));
    }
    std::vector<uint32_t> predict_class(const std::vector<float>& x, size_t n_features) const {
        size_t n = detail::rows_of(x.size(), n_features, "x");
        std::vector<uint32_t> out(n);
        predict_class(x.data(), n, n_features, out.data(), out.size());
        return out;
    }

private:
    explicit Mlp(nnk_mlp* m) noexcept : h_(m) {}
    static void finish_fit(const TrainConfig& cfg, int32_t status) {
        std::string msg = status != NNK_OK ? nnk_last_error_message() : "";
        cfg.rethrow_callback_error();
        if (status != NNK_OK) detail::raise(status, msg);
    }

    std::unique_ptr<nnk_mlp, detail::MlpDeleter> h_;
};

}  // namespace nnkern

#endif  // NNKERN_HPP
