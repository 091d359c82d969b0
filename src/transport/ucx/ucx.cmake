# The UCX layer (src/transport/ucx), included once by the top-level CMakeLists after
# the libraries are defined. TE_WITH_UCX: AUTO (on when pkg-config finds `ucx`; point
# PKG_CONFIG_PATH at a UCX of your own), ON (a configure error without it) or OFF.
# Without UCX, ucx_none.cc answers NotSupported; nothing outside this folder differs.
set(TE_WITH_UCX AUTO CACHE STRING "Build the ucx transport: AUTO, ON or OFF")
set_property(CACHE TE_WITH_UCX PROPERTY STRINGS AUTO ON OFF)
if(NOT TE_WITH_UCX MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "TE_WITH_UCX must be AUTO, ON or OFF (got '${TE_WITH_UCX}')")
endif()

set(TE_UCX_FOUND OFF)
if(NOT TE_WITH_UCX STREQUAL "OFF")
  pkg_check_modules(UCX IMPORTED_TARGET ucx)
  if(UCX_FOUND)
    set(TE_UCX_FOUND ON)
  elseif(TE_WITH_UCX STREQUAL "ON")
    message(FATAL_ERROR "TE_WITH_UCX=ON but pkg-config finds no 'ucx' "
                        "(apt-get install libucx-dev, or set PKG_CONFIG_PATH to your UCX's lib/pkgconfig)")
  endif()
endif()

set(te_ucx_dir ${CMAKE_CURRENT_LIST_DIR})
# The transport uses only the layer's interface, so it builds either way (without
# UCX its row in the transport table says not built).
target_sources(te_objects PRIVATE ${te_ucx_dir}/ucx_transport.cc)
if(TE_UCX_FOUND)
  message(STATUS "ucx transport: on (UCX ${UCX_VERSION})")
  target_sources(te_objects PRIVATE ${te_ucx_dir}/ucx_context.cc ${te_ucx_dir}/ucx_worker.cc)
  target_link_libraries(te_objects PRIVATE PkgConfig::UCX)
  foreach(lib transfer_engine transfer_engine_static)
    target_link_libraries(${lib} PRIVATE PkgConfig::UCX)
  endforeach()
else()
  if(TE_WITH_UCX STREQUAL "OFF")
    message(STATUS "ucx transport: off (TE_WITH_UCX=OFF)")
  else()
    message(STATUS "ucx transport: off (TE_WITH_UCX=AUTO and pkg-config finds no 'ucx')")
  endif()
  target_sources(te_objects PRIVATE ${te_ucx_dir}/ucx_none.cc)
endif()
