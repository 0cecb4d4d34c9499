# Install rules and the exported CMake package (find_package(tidal)) plus tidal.pc.
#
# Every layer's CMakeLists calls tidal_install_library(<target> <component>) once for its
# library; it makes the tidal::<component> alias for the build tree, exports the target as
# tidal::<component> and installs the layer's include/ folder. Programs call
# tidal_install_program(<target>...). The top-level CMakeLists calls tidal_install_package()
# last, which writes tidalConfig.cmake, tidalConfigVersion.cmake, tidalTargets.cmake and
# tidal.pc for whichever layers this configuration builds.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TIDAL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/tidal CACHE STRING
    "Where tidalConfig.cmake is installed, relative to the prefix")
mark_as_advanced(TIDAL_INSTALL_CMAKEDIR)

# tidal_install_library(target component): `target` is a library made by tidal_library()
# in the current folder, whose public headers are in ${CMAKE_CURRENT_SOURCE_DIR}/include.
function(tidal_install_library target component)
  if(ARGC GREATER 2)
    message(FATAL_ERROR "tidal_install_library(${target} ${component}): unexpected "
                        "arguments: ${ARGN}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "tidal_install_library: no target named '${target}'")
  endif()
  if(NOT component MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "tidal_install_library(${target} ${component}): the component name "
                        "must be lower-case letters, digits and '_'")
  endif()
  if(TARGET tidal::${component})
    message(FATAL_ERROR "tidal_install_library: tidal::${component} is already defined")
  endif()
  set(include_dir ${CMAKE_CURRENT_SOURCE_DIR}/include)
  if(NOT IS_DIRECTORY ${include_dir})
    message(FATAL_ERROR "tidal_install_library(${target}): ${include_dir} is missing; "
                        "a layer's public headers live there")
  endif()

  add_library(tidal::${component} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${component})
  install(TARGETS ${target} EXPORT tidalTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT tidal_development
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT tidal_development)
  install(DIRECTORY ${include_dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          COMPONENT tidal_development
          FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp" PATTERN "*.cuh")
  set_property(GLOBAL APPEND PROPERTY TIDAL_INSTALLED_COMPONENTS ${component})
  set_property(GLOBAL APPEND PROPERTY TIDAL_INSTALLED_TARGETS ${target})
endfunction()

# tidal_install_program(target...): installs command-line programs into bin/.
function(tidal_install_program)
  foreach(target IN LISTS ARGN)
    if(NOT TARGET ${target})
      message(FATAL_ERROR "tidal_install_program: no target named '${target}'")
    endif()
    install(TARGETS ${target} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tidal_tools)
  endforeach()
endfunction()

# tidal_install_package(): the export set, the package config files and tidal.pc. Call it
# once, after every layer's folder has been added.
function(tidal_install_package)
  get_property(components GLOBAL PROPERTY TIDAL_INSTALLED_COMPONENTS)
  get_property(targets GLOBAL PROPERTY TIDAL_INSTALLED_TARGETS)
  if(NOT components)
    message(FATAL_ERROR "tidal_install_package: no layer called tidal_install_library()")
  endif()

  install(EXPORT tidalTargets NAMESPACE tidal:: FILE tidalTargets.cmake
          DESTINATION ${TIDAL_INSTALL_CMAKEDIR} COMPONENT tidal_development)

  set(TIDAL_PACKAGE_COMPONENTS ${components})
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tidalConfig.cmake.in
    ${PROJECT_BINARY_DIR}/tidalConfig.cmake
    INSTALL_DESTINATION ${TIDAL_INSTALL_CMAKEDIR}
    NO_SET_AND_CHECK_MACRO)
  # 0.x releases may change the API in any minor version.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/tidalConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/tidalConfig.cmake
                ${PROJECT_BINARY_DIR}/tidalConfigVersion.cmake
          DESTINATION ${TIDAL_INSTALL_CMAKEDIR} COMPONENT tidal_development)

  # tidal.pc: static libraries, so every layer's archive is listed, dependents first
  # (the order the layers depend on each other: engine is last).
  set(link_order tidal_cluster tidal_collectives tidal_store tidal_backends tidal_sim
                 tidal_engine)
  foreach(target IN LISTS targets)
    if(NOT target IN_LIST link_order)
      message(FATAL_ERROR "tidal_install_package: add ${target} to the link order for tidal.pc "
                          "in cmake/TidalInstall.cmake")
    endif()
  endforeach()
  set(libs "")
  foreach(target IN LISTS link_order)
    if(target IN_LIST targets)
      get_target_property(name ${target} OUTPUT_NAME)
      if(NOT name)
        set(name ${target})
      endif()
      string(APPEND libs " -l${name}")
    endif()
  endforeach()
  if(TARGET tidal_backends)
    string(APPEND libs " -lcurl")  # the etcd metadata store in tidal_backends
  endif()
  # The UCX backend is compiled into tidal_backends: its users link UCX's libraries too.
  if(TIDAL_HAVE_UCX AND tidal_backends IN_LIST targets)
    foreach(lib IN LISTS UCX_LIBRARIES)
      string(APPEND libs " -l${lib}")
    endforeach()
  endif()
  # So are the CUDA and ibverbs backends: the CUDA runtime and libibverbs.
  if(TIDAL_HAVE_CUDA AND tidal_backends IN_LIST targets)
    string(APPEND libs " -L${CUDAToolkit_LIBRARY_DIR} -lcudart")
  endif()
  if(TIDAL_HAVE_VERBS AND tidal_backends IN_LIST targets)
    string(APPEND libs " -libverbs")
  endif()
  set(cflags "")
  if(TARGET tidal_backends)
    foreach(backend UCX VERBS CUDA)
      if(TIDAL_HAVE_${backend})
        string(APPEND cflags " -DTIDAL_HAVE_${backend}=1")
      else()
        string(APPEND cflags " -DTIDAL_HAVE_${backend}=0")
      endif()
    endforeach()
  endif()
  # Relative directories keep the file relocatable (pcfiledir), as long as the install
  # directories are relative to the prefix, which is the default.
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(TIDAL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    set(TIDAL_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
    set(TIDAL_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
  else()
    file(RELATIVE_PATH up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
    string(REGEX REPLACE "/$" "" up "${up}")
    set(TIDAL_PC_PREFIX "\${pcfiledir}/${up}")
    set(TIDAL_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
    set(TIDAL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()
  string(STRIP "${libs}" TIDAL_PC_LIBS)
  string(STRIP "${cflags}" TIDAL_PC_CFLAGS)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/tidal.pc.in ${PROJECT_BINARY_DIR}/tidal.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/tidal.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT tidal_development)
endfunction()
