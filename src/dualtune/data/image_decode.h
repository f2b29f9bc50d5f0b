#pragma once
// Decoding one image file with OpenCV into an Image: grayscale files stay 1 channel,
// colour files become 3 channels RGB (OpenCV's BGR swapped, alpha dropped), 8 bits.
// Channel conversion to what the model wants happens in transforms.
#include <string>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

/// Throws dualtune::Error naming `path` when the file is missing or cannot be decoded.
Image decode_image_file(const std::string& path);

/// True for the extensions the readers accept: jpg, jpeg, png, bmp (any case).
bool has_image_extension(const std::string& filename);

}  // namespace dualtune::data
