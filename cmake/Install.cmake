# `cmake --install` for C++ users: the core as a static library, its public
# headers and a package config, so that
#
#   find_package(secondopinion CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE secondopinion::secondopinion)
#
# works from any prefix the tree is installed to (the package is relocatable:
# every path in it is relative to the prefix). examples/cpp/README.md has the
# whole recipe. Wheel builds (scikit-build-core sets SKBUILD) install only the
# Python extension.
if(SKBUILD)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The version is the Python package's, from pyproject.toml (one source of truth).
file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/pyproject.toml" _so_version_line REGEX "^version = \"[0-9.]+\"")
string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" SECONDOPINION_VERSION "${_so_version_line}")

set(SO_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/secondopinion")
# Files the package carries for the core's dependencies, below lib/secondopinion
# and include/secondopinion so they cannot collide with a system copy.
set(SO_PRIVATE_LIBDIR "${CMAKE_INSTALL_LIBDIR}/secondopinion")
set(SO_ORT_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}/secondopinion/onnxruntime")

set_target_properties(secondopinion_core PROPERTIES OUTPUT_NAME secondopinion EXPORT_NAME secondopinion)

install(TARGETS secondopinion_core EXPORT secondopinionTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/cpp/include/secondopinion"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" FILES_MATCHING PATTERN "*.hpp")

# Snowball's libstemmer.a (BSD): the core's analyzer calls it, and a static
# library does not carry its dependencies, so consumers link this copy.
get_target_property(_so_stemmer_archive secondopinion_stemmer IMPORTED_LOCATION)
install(FILES "${_so_stemmer_archive}" DESTINATION "${SO_PRIVATE_LIBDIR}" RENAME libstemmer.a)

# The ONNX Runtime headers the core was compiled against (MIT). Public headers
# (session.hpp, cross_encoder.hpp, ...) include onnxruntime_cxx_api.h, and a
# consumer must see the same API version as the core, so the package ships
# them rather than asking for a second, possibly different, copy.
file(GLOB _so_ort_headers "${ONNXRUNTIME_INCLUDE_DIR}/*.h")
install(FILES ${_so_ort_headers} DESTINATION "${SO_ORT_INCLUDEDIR}")
foreach(_so_notice "${ONNXRUNTIME_INCLUDE_DIR}/../../share/doc/libonnxruntime-dev/copyright"
                   "${ONNXRUNTIME_INCLUDE_DIR}/LICENSE")
  if(EXISTS "${_so_notice}")
    install(FILES "${_so_notice}" DESTINATION "${SO_ORT_INCLUDEDIR}" RENAME COPYRIGHT)
    break()
  endif()
endforeach()

install(EXPORT secondopinionTargets NAMESPACE secondopinion:: DESTINATION "${SO_CMAKE_DIR}")
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/secondopinionConfig.cmake.in"
  "${CMAKE_CURRENT_BINARY_DIR}/secondopinionConfig.cmake"
  INSTALL_DESTINATION "${SO_CMAKE_DIR}"
  PATH_VARS SO_PRIVATE_LIBDIR SO_ORT_INCLUDEDIR)
# 0.x: minor versions may break the API.
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/secondopinionConfigVersion.cmake"
  VERSION "${SECONDOPINION_VERSION}" COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/secondopinionConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/secondopinionConfigVersion.cmake"
  DESTINATION "${SO_CMAKE_DIR}")
