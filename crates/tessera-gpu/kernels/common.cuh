// Prepended to every kernel source of tessera-gpu (by the crate before NVRTC, and by the host
// shim in the tests).
//
// Every kernel is a grid-stride loop over a flat output index, with no cross-thread
// dependency: one thread computes whole output elements. That keeps the kernels free of races
// and lets the tests run them on the CPU one thread at a time (kernels/shim/).
// Minus infinity, as a constant expression that both NVRTC and a host C++ compiler accept.
#define TESSERA_NEG_INF (-1.0f / 0.0f)

#define TESSERA_GRID_STRIDE(index, count)                                         \
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;     \
         index < (long long)(count); index += (long long)blockDim.x * gridDim.x)
