# cmake --install: the library, its headers, a CMake package
# (find_package(TransferEngine CONFIG) -> TransferEngine::transfer_engine) and a
# pkg-config file, in the GNUInstallDirs places. Tools and the Python package install
# from their own directories.
include(CMakePackageConfigHelpers)

set_target_properties(transfer_engine PROPERTIES VERSION ${PROJECT_VERSION}
                                                 SOVERSION ${PROJECT_VERSION_MAJOR})
install(TARGETS transfer_engine EXPORT TransferEngineTargets
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The static archive is installed for pkg-config --static users; the CMake package
# exports the shared library only (its private dependencies stay inside it).
install(TARGETS transfer_engine_static)
install(DIRECTORY include/te DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(te_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/TransferEngine)
install(EXPORT TransferEngineTargets NAMESPACE TransferEngine:: DESTINATION ${te_cmake_dir})
configure_package_config_file(cmake/TransferEngineConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/TransferEngineConfig.cmake INSTALL_DESTINATION ${te_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/TransferEngineConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/TransferEngineConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/TransferEngineConfigVersion.cmake
        DESTINATION ${te_cmake_dir})

# Libs.private: what linking the static archive needs besides it.
set(TE_PC_LIBS_PRIVATE "-lhiredis -lcurl -lcrypto -lpthread -lrt")
if(NUMA_FOUND)
  string(APPEND TE_PC_LIBS_PRIVATE " -lnuma")
endif()
if(TE_HAVE_METRICS)
  string(APPEND TE_PC_LIBS_PRIVATE " -lprometheus-cpp-core -lcivetweb-cpp -lcivetweb")
endif()
# Relocatable: the prefix is found from where the .pc file lies, so cmake --install
# --prefix anywhere (or moving the tree) keeps it right.
file(RELATIVE_PATH TE_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(cmake/transfer_engine.pc.in ${CMAKE_CURRENT_BINARY_DIR}/transfer_engine.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/transfer_engine.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
