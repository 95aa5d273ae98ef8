# Rewrites a .cu file's kernel launches for cudasim, so the host compiler
# accepts it:  name<T>(optional)<<<grid, block, shmem, stream>>>(args)
# becomes     ::cudasim::launch(name<T>, "name<T>", ::cudasim::LaunchConfig{grid, block, shmem, stream})(args)
# Nothing else changes; a #line directive keeps diagnostics on the original
# file. A launch this does not recognise is a build error, not a skip.
#   cmake -DIN=<file.cu> -DOUT=<file.cpp> -P rewrite_launches.cmake
file(READ "${IN}" text)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_, ]+>)?)<<<"
       "::cudasim::launch(\\1, \"\\1\", ::cudasim::LaunchConfig{" text "${text}")
string(REPLACE ">>>(" "})(" text "${text}")
if(text MATCHES "<<<|>>>")
  message(FATAL_ERROR "cudasim: ${IN} has a kernel launch that rewrite_launches.cmake does not recognise")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
# Only a changed file is touched, so an unchanged kernel is not recompiled.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
