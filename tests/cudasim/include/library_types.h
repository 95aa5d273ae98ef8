// cudasim: the data-type enum the CUDA libraries share (values as CUDA's).
#pragma once

enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
};
typedef enum cudaDataType_t cudaDataType;
