// Compiled by tests/c_api.rs as C++17 with -Wall -Werror: proves the header's
// extern "C" guard and that the static library links into a C++ program.
#include "nnkern.h"
#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    std::vector<float> a{1, 2, 3, 4, 5, 6}, b{7, 8, 9, 10, 11, 12}, c(4, NAN);
    int32_t st = nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f,
                           c.data(), 2);
    if (st != NNK_OK || c[0] != 58 || c[1] != 64 || c[2] != 139 || c[3] != 154) {
        std::fprintf(stderr, "C++ sgemm failed: %d %s\n", st, nnk_last_error_message());
        return 1;
    }
    st = nnk_sgemm(7, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 2);
    if (st != NNK_ERR_INVALID_ARG) return 1;
    std::printf("header_cpp: ok (%s)\n", nnk_version());
    return 0;
}
