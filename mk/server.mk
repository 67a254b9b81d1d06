# The C++ server, CLI and unit tests, through CMake + Ninja + ccache.
# build/release: what `make run` and the integration tests use.
# build/asan, build/tsan: the unit and in-process gRPC tests under
# AddressSanitizer+UBSan and ThreadSanitizer.
CMAKE_COMMON := -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
CTEST_FLAGS := --output-on-failure --timeout 300

.PHONY: server server-deps test-server test-server-asan test-server-tsan

server-deps:
	@scripts/deps.sh server

$(BUILD)/release/build.ninja: | server-deps
	cmake -S . -B $(BUILD)/release $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo

server: $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release --target parley_server parley_cli

$(BUILD)/%/build.ninja: | server-deps
	cmake -S . -B $(BUILD)/$* $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZER=$(if $(filter tsan,$*),thread,address)

test-server-%: $(BUILD)/%/build.ninja
	cmake --build $(BUILD)/$*
	cd $(BUILD)/$* && ctest $(CTEST_FLAGS)

test-server: server test-server-asan test-server-tsan
