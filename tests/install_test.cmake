# The install rules end to end (ctest: install_prefix): `cmake --install` of the
# build tree into a temporary prefix, then the installed programs run from it.
#
#   cmake -DBUILD_DIR=<build tree> -DVERSION=<project version>
#         [-DBENCH=1] [-DCUDA_MODULE=libgcn_cuda.so] -P tests/install_test.cmake
#
# Checks: <prefix>/bin/gcn-train (and gcn-bench when built) are installed and
# run (--version, --help); a CUDA build installs its module where gcn-train's
# loader looks (<prefix>/lib/gcn-train/, see src/backend/cuda/cuda_loader.cpp) and nothing
# else; install_manifest.txt lists exactly the installed files. The build
# tree's own install_manifest.txt (what `cmake --install` last wrote, which
# docs/install.md uses to uninstall) is put back afterwards.
cmake_minimum_required(VERSION 3.22)
foreach(var BUILD_DIR VERSION)
  if(NOT ${var})
    message(FATAL_ERROR "install_test.cmake: -D${var}=... is required")
  endif()
endforeach()

set(work "${BUILD_DIR}/install-test")
set(prefix "${work}/prefix with space")  # a path a shell would split
set(manifest "${BUILD_DIR}/install_manifest.txt")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")
set(had_manifest OFF)
if(EXISTS "${manifest}")
  set(had_manifest ON)
  file(COPY_FILE "${manifest}" "${work}/install_manifest.txt.saved")
endif()

function(fail msg)
  if(had_manifest)
    file(COPY_FILE "${work}/install_manifest.txt.saved" "${manifest}")
  else()
    file(REMOVE "${manifest}")
  endif()
  message(FATAL_ERROR "install_test.cmake: ${msg}")
endfunction()

execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  fail("cmake --install ${BUILD_DIR} --prefix ${prefix} failed (${rc}):\n${out}${err}")
endif()

# What must be there, and nothing else.
set(expected "${prefix}/bin/gcn-train")
if(BENCH)
  list(APPEND expected "${prefix}/bin/gcn-bench")
endif()
if(CUDA_MODULE)
  list(APPEND expected "${prefix}/lib/gcn-train/${CUDA_MODULE}")
endif()
file(GLOB_RECURSE installed LIST_DIRECTORIES false "${prefix}/*")
list(SORT installed)
list(SORT expected)
if(NOT installed STREQUAL expected)
  fail("installed files differ:\n  expected: ${expected}\n  installed: ${installed}")
endif()
file(STRINGS "${manifest}" listed)
list(SORT listed)
if(NOT listed STREQUAL expected)
  fail("install_manifest.txt lists ${listed}, expected ${expected}")
endif()

# The installed programs run from the prefix (no build-tree RPATH left to lean on).
execute_process(COMMAND "${prefix}/bin/gcn-train" --version
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "${VERSION}")
  fail("${prefix}/bin/gcn-train --version: exit ${rc}, printed '${out}${err}', expected ${VERSION}")
endif()
message(STATUS "installed gcn-train --version: ${out}")
if(BENCH)
  execute_process(COMMAND "${prefix}/bin/gcn-bench" --help
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "--device cpu\\|cuda\\|all")
    fail("${prefix}/bin/gcn-bench --help: exit ${rc}, printed '${out}${err}'")
  endif()
endif()

# Uninstalling as docs/install.md says: remove what the manifest lists.
file(REMOVE ${listed})
file(GLOB_RECURSE left LIST_DIRECTORIES false "${prefix}/*")
if(left)
  fail("files left after removing the manifest's: ${left}")
endif()

if(had_manifest)
  file(COPY_FILE "${work}/install_manifest.txt.saved" "${manifest}")
else()
  file(REMOVE "${manifest}")
endif()
file(REMOVE_RECURSE "${work}")
