# Finds the two native build dependencies that PyPI cannot provide:
#   * ONNX Runtime C/C++ headers (the onnxruntime wheel ships the library only)
#   * Snowball's libstemmer (header + static library)
# Order for each: an explicit path (CMake variable or environment), a system
# install, then Debian packages downloaded and unpacked into the build tree.

set(_SO_DEB_ROOT "${CMAKE_BINARY_DIR}/_debian")
set(_SO_DEB_SUITE "trixie" CACHE STRING "Debian suite that provides libonnxruntime-dev and libstemmer-dev")

function(_so_fetch_debs)
  if(EXISTS "${_SO_DEB_ROOT}/.done")
    return()
  endif()
  message(STATUS "secondopinion: fetching ${ARGN} from Debian ${_SO_DEB_SUITE} into ${_SO_DEB_ROOT}")
  execute_process(
    COMMAND sh "${CMAKE_CURRENT_LIST_DIR}/fetch_deb.sh" "${_SO_DEB_ROOT}" "${_SO_DEB_SUITE}" ${ARGN}
    RESULT_VARIABLE _rc ERROR_VARIABLE _err OUTPUT_QUIET)
  if(NOT _rc EQUAL 0)
    message(WARNING "secondopinion: downloading Debian packages failed:\n${_err}")
  else()
    file(WRITE "${_SO_DEB_ROOT}/.done" "${ARGN}\n")
  endif()
endfunction()

# --- ONNX Runtime headers -------------------------------------------------
if(NOT ONNXRUNTIME_INCLUDE_DIR AND DEFINED ENV{ONNXRUNTIME_INCLUDE_DIR})
  set(ONNXRUNTIME_INCLUDE_DIR "$ENV{ONNXRUNTIME_INCLUDE_DIR}")
endif()
# --- libstemmer -------------------------------------------------------------
if(NOT STEMMER_ROOT AND DEFINED ENV{STEMMER_ROOT})
  set(STEMMER_ROOT "$ENV{STEMMER_ROOT}")
endif()

set(_so_need_debs)
if(NOT ONNXRUNTIME_INCLUDE_DIR)
  if(EXISTS "/usr/include/onnxruntime/onnxruntime_cxx_api.h")
    set(ONNXRUNTIME_INCLUDE_DIR "/usr/include/onnxruntime")
  else()
    list(APPEND _so_need_debs libonnxruntime-dev)
  endif()
endif()
if(NOT STEMMER_ROOT)
  if(EXISTS "/usr/include/libstemmer.h" AND EXISTS "/usr/lib/x86_64-linux-gnu/libstemmer.a")
    set(STEMMER_INCLUDE_DIR "/usr/include")
    set(STEMMER_LIBRARY "/usr/lib/x86_64-linux-gnu/libstemmer.a")
  else()
    list(APPEND _so_need_debs libstemmer-dev)
  endif()
else()
  set(STEMMER_INCLUDE_DIR "${STEMMER_ROOT}/include")
  file(GLOB_RECURSE STEMMER_LIBRARY "${STEMMER_ROOT}/lib*/libstemmer.a")
endif()

if(_so_need_debs)
  # Fetch both at once so one apt update serves both packages.
  _so_fetch_debs(libonnxruntime-dev libstemmer-dev)
  if(NOT ONNXRUNTIME_INCLUDE_DIR AND EXISTS "${_SO_DEB_ROOT}/usr/include/onnxruntime/onnxruntime_cxx_api.h")
    set(ONNXRUNTIME_INCLUDE_DIR "${_SO_DEB_ROOT}/usr/include/onnxruntime")
  endif()
  if(NOT STEMMER_LIBRARY)
    file(GLOB STEMMER_LIBRARY "${_SO_DEB_ROOT}/usr/lib/*/libstemmer.a")
    set(STEMMER_INCLUDE_DIR "${_SO_DEB_ROOT}/usr/include")
  endif()
endif()

if(NOT ONNXRUNTIME_INCLUDE_DIR OR NOT EXISTS "${ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_cxx_api.h")
  message(FATAL_ERROR
    "secondopinion: ONNX Runtime C/C++ headers not found.\n"
    "The onnxruntime wheel ships the library but no headers. Provide them by one of:\n"
    "  * -DONNXRUNTIME_INCLUDE_DIR=/path/with/onnxruntime_cxx_api.h (or the environment variable of that name)\n"
    "  * apt-get install libonnxruntime-dev   (Debian trixie or newer)\n"
    "  * network access to deb.debian.org, so the build can unpack libonnxruntime-dev into the build tree")
endif()
if(NOT STEMMER_LIBRARY OR NOT EXISTS "${STEMMER_INCLUDE_DIR}/libstemmer.h")
  message(FATAL_ERROR
    "secondopinion: Snowball libstemmer (libstemmer.h + libstemmer.a) not found.\n"
    "Provide it by one of:\n"
    "  * -DSTEMMER_ROOT=/prefix (with include/libstemmer.h and lib/libstemmer.a), or the environment variable\n"
    "  * apt-get install libstemmer-dev\n"
    "  * network access to deb.debian.org, so the build can unpack libstemmer-dev into the build tree")
endif()
message(STATUS "secondopinion: ONNX Runtime headers: ${ONNXRUNTIME_INCLUDE_DIR}")
message(STATUS "secondopinion: libstemmer: ${STEMMER_LIBRARY}")

add_library(secondopinion_stemmer STATIC IMPORTED)
set_target_properties(secondopinion_stemmer PROPERTIES
  IMPORTED_LOCATION "${STEMMER_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${STEMMER_INCLUDE_DIR}")
