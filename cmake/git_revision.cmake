# Run at every build (cmake -P, from the dualtune_git_revision target): writes OUT, a
# header defining DUALTUNE_GIT_REVISION as `git describe --always --dirty` of SRC, or
# "unknown" outside a git checkout. OUT is replaced only when the revision changed, so
# an unchanged revision recompiles nothing.
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE rev RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR rev STREQUAL "")
  set(rev "unknown")
endif()
file(WRITE "${OUT}.tmp" "#define DUALTUNE_GIT_REVISION \"${rev}\"\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
