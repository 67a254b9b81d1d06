# The C++ server, CLI and unit tests, through CMake + Ninja + ccache.
# build/release: what `make run` and the integration tests use.
# build/asan, build/tsan: the unit and in-process gRPC tests under
# AddressSanitizer+UBSan and ThreadSanitizer. test-server also runs the
# fuzz targets' seed corpora once (test-fuzz-corpus, mk/fuzz.mk). Debian's gRPC is not built with
# TSan, so the TSan run leaves out the tests labelled `grpc` (they run in the
# other two builds); see docs/testing.md.
CMAKE_COMMON := -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
CTEST_FLAGS := --output-on-failure --timeout 300

.PHONY: server server-deps test-server test-server-release test-server-asan test-server-tsan

server-deps:
	@scripts/deps.sh server

$(BUILD)/release/build.ninja: | server-deps
	cmake -S . -B $(BUILD)/release $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(BUILD)/asan/build.ninja: | server-deps
	cmake -S . -B $(BUILD)/asan $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZER=address

$(BUILD)/tsan/build.ninja: | server-deps
	cmake -S . -B $(BUILD)/tsan $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZER=thread

server: $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release --target parley_server parley_cli

test-server-release: $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release
	cd $(BUILD)/release && ctest $(CTEST_FLAGS)

test-server-asan: $(BUILD)/asan/build.ninja
	cmake --build $(BUILD)/asan
	cd $(BUILD)/asan && ctest $(CTEST_FLAGS)

test-server-tsan: $(BUILD)/tsan/build.ninja
	cmake --build $(BUILD)/tsan
	cd $(BUILD)/tsan && ctest $(CTEST_FLAGS) --label-exclude grpc

test-server: test-server-release test-server-asan test-server-tsan test-fuzz-corpus
