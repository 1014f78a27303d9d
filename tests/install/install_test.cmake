# Run by ctest: see CMakeLists.txt beside this file.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

foreach(f include/cnf.h include/cnf_dynamics.h include/cnf_pde.h include/cnf_fm.h
          include/cnf_model.h include/cnf_layers.h bin/cnf
          ${LIBDIR}/cmake/cnf/cnfConfig.cmake ${LIBDIR}/pkgconfig/cnf.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# the installed command-line tool runs from its prefix
run(${prefix}/bin/cnf --version)
if(NOT last_output MATCHES "^cnf [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "cnf --version printed: ${last_output}")
endif()

# find_package(cnf)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK}/consumer
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DEXAMPLE_SOURCE=${SOURCE_DIR}/examples/flow_basics.c
    -DCMAKE_BUILD_RPATH=${prefix}/${LIBDIR}
    "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK}/consumer)
run(${WORK}/consumer/flow_basics)
if(NOT last_output MATCHES "max_logp_mismatch")
  message(FATAL_ERROR "example (find_package) printed: ${last_output}")
endif()

# pkg-config
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
run(pkg-config --cflags --libs cnf)
string(STRIP "${last_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(extra UNIX_COMMAND "${EXTRA_FLAGS}")
run(${C_COMPILER} ${extra} ${SOURCE_DIR}/examples/flow_basics.c ${pc_flags} -lm
    -Wl,-rpath,${prefix}/${LIBDIR} -o ${WORK}/flow_basics_pc)
run(${WORK}/flow_basics_pc)
# the library's training loop from the installed headers equals `cnf train`
# bit for bit: a CNF and a RealNVP stack on 8gaussians, one thread
run(${C_COMPILER} ${extra} ${SOURCE_DIR}/examples/fit_toy.c ${pc_flags} -lm
    -Wl,-rpath,${prefix}/${LIBDIR} -o ${WORK}/fit_toy)
foreach(flow cnf realnvp)
  run(${WORK}/fit_toy ${flow} 8gaussians 25 7 ${WORK}/lib_${flow}.model)
  string(REGEX MATCH "loss_avg [^\n]*" lib_loss "${last_output}")
  run(${prefix}/bin/cnf --threads 1 train --flow ${flow} --data 8gaussians --iters 25 --seed 7
      --out ${WORK}/cli_${flow}.model)
  string(REGEX MATCH "loss_avg [^\n]*" cli_loss "${last_output}")
  if(NOT lib_loss STREQUAL cli_loss OR lib_loss STREQUAL "")
    message(FATAL_ERROR "${flow}: cnf_fit printed '${lib_loss}', cnf train '${cli_loss}'")
  endif()
  run(${CMAKE_COMMAND} -E compare_files ${WORK}/lib_${flow}.model ${WORK}/cli_${flow}.model)
  message(STATUS "${flow}: cnf_fit and cnf train wrote the same model file (${lib_loss})")
endforeach()
# the Python package finds the installed library through the prefix alone
if(PYTHON AND EXISTS ${PYTHON})
  set(ENV{PYTHONPATH} ${prefix}/${PYTHON_DIR})
  set(ENV{PYTHONDONTWRITEBYTECODE} 1)
  unset(ENV{CNF_LIBRARY})
  file(WRITE ${WORK}/use_cnf.py "import cnf\nprint(cnf.library_path)\n"
       "print(cnf.Model.cnf(2, hidden='8').log_prob([[0.5, -1.0]])[0])\n")
  run(${PYTHON} ${WORK}/use_cnf.py)
  if(NOT last_output MATCHES "^${prefix}/")
    message(FATAL_ERROR "the installed Python package loaded another library: ${last_output}")
  endif()
endif()
message(STATUS "install test passed")
