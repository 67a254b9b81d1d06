# The C++ fuzz targets (tests/fuzz/, libFuzzer; docs/testing.md, "C++ fuzz
# targets"), in build/fuzz: clang, every library with
# -fsanitize=fuzzer-no-link,address,undefined (PARLEY_FUZZ=ON).
#
#   make fuzz-cpp            each target for FUZZ_TIME (default 60s) from its
#                            seed corpus (scripts/fuzz-cpp.sh); `make fuzz`
#                            runs these and the Go ones (fuzz-go)
#   make test-fuzz-corpus    each seed corpus once (part of make test-server)

.PHONY: fuzz-deps fuzzers fuzz-cpp test-fuzz-corpus

fuzz-deps:
	@scripts/deps.sh fuzz

$(BUILD)/fuzz/build.ninja: | server-deps fuzz-deps
	cmake -S . -B $(BUILD)/fuzz -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DPARLEY_FUZZ=ON -DBUILD_TESTING=OFF

fuzzers: $(BUILD)/fuzz/build.ninja
	cmake --build $(BUILD)/fuzz --target parley_fuzzers

fuzz-cpp: fuzzers
	scripts/fuzz-cpp.sh

test-fuzz-corpus: fuzzers
	scripts/fuzz-cpp.sh --corpus
